/* imap/response.h — parsed IMAP responses and typed accessors.
 *
 * The parser (imap/parser.h) turns bytes into ImapResponse trees; this file
 * declares the tree and decodes what it means: FETCH items, LIST, STATUS,
 * SELECT data. Input from the server is hostile: every accessor
 * checks types and ranges and reports a mismatch instead of asserting.
 * Thread-agnostic: a response belongs to whoever holds it.
 */
#ifndef IMAPFS_IMAP_RESPONSE_H
#define IMAPFS_IMAP_RESPONSE_H

#include <glib.h>

typedef enum {
	IMAP_STATUS_NONE, /* a data response ("* 3 EXISTS") */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
} ImapStatus;

typedef enum {
	IMAP_VALUE_ATOM, /* also numbers and BODY[...]<n> section atoms */
	IMAP_VALUE_NIL,
	IMAP_VALUE_STRING,  /* quoted string or in-memory literal */
	IMAP_VALUE_SPOOLED, /* literal larger than inline_max, on disk */
	IMAP_VALUE_LIST,    /* ( ... ) */
} ImapValueType;

typedef struct ImapValue ImapValue;
struct ImapValue {
	ImapValueType type;
	/* ATOM, STRING: the bytes, always NUL-terminated; a literal may hold
	 * NUL bytes, so use len. NULL for NIL, SPOOLED, LIST. */
	char *str;
	gsize len;	  /* ATOM, STRING: byte count; SPOOLED: size */
	int fd;		  /* SPOOLED: unlinked file holding the literal
			   * from offset 0; owned by the response. else -1 */
	GPtrArray *items; /* LIST: ImapValue *; else NULL */
};

typedef enum {
	IMAP_RESPONSE_UNTAGGED,
	IMAP_RESPONSE_TAGGED,
	IMAP_RESPONSE_CONTINUATION,
} ImapResponseKind;

typedef struct {
	ImapResponseKind kind;
	char *tag;	     /* TAGGED: the tag; else NULL */
	ImapStatus status;   /* OK/NO/BAD/BYE/PREAUTH; NONE for data */
	char *code;	     /* status: response code, upper-cased
			      * ("UIDVALIDITY"); nullable */
	char *code_arg;	     /* status: the rest inside [ ], trimmed;
			      * nullable */
	char *text;	     /* status and continuation: human text, never
			      * NULL ("" when absent) */
	gboolean has_number; /* data: "* 23 EXISTS" has number 23 */
	guint32 number;
	char *name;	 /* data: keyword upper-cased ("FETCH", "LIST",
			  * "EXISTS", "CAPABILITY"); else NULL */
	ImapValue *args; /* data: a LIST of what follows name; never
			  * NULL for data responses, NULL otherwise */
} ImapResponse;

ImapResponse *imap_response_new(void);
void imap_response_free(ImapResponse *resp); /* NULL-safe; closes spool fds */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapResponse, imap_response_free)

ImapValue *imap_value_new(ImapValueType type);
void imap_value_free(ImapValue *value); /* NULL-safe, recursive */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapValue, imap_value_free)

/* Item @i of a LIST value, or NULL if @list is not a list or is too short.
 * (transfer none) */
const ImapValue *imap_value_item(const ImapValue *list, guint i);
guint imap_value_n_items(const ImapValue *list); /* 0 unless a LIST */
/* TRUE if @v is an ATOM equal to @atom, ignoring ASCII case. */
gboolean imap_value_is_atom(const ImapValue *v, const char *atom);
/* An ATOM of 1..20 decimal digits whose value fits in 64 bits. */
gboolean imap_value_get_number(const ImapValue *v, guint64 *out_number);
/* astring / nstring: the text of an ATOM or STRING, NULL for NIL and
 * anything else. (transfer none) */
const char *imap_value_get_string(const ImapValue *v);

/* ---- Response codes -------------------------------------------------- */

/* TRUE if @resp carries response code @code; *out_number gets its numeric
 * argument when @out_number is non-NULL (FALSE if it has none). */
gboolean imap_response_code_number(const ImapResponse *resp, const char *code,
				   guint64 *out_number);

/* ---- FETCH ----------------------------------------------------------- */

typedef struct {
	guint32 seq;  /* message sequence number */
	guint32 uid;  /* 0 if UID was not in the response */
	char **flags; /* NULL if FLAGS absent; (transfer full) */
	gboolean has_size;
	guint64 size; /* RFC822.SIZE */
	gboolean has_internaldate;
	gint64 internaldate; /* seconds since the epoch, UTC */
	gboolean has_modseq;
	guint64 modseq;		   /* MODSEQ (n) */
	const ImapValue *body;	   /* BODY[...] value: STRING, SPOOLED
				    * or NIL; borrowed; nullable */
	char *body_section;	   /* "" for BODY[], "HEADER", ...;
				    * (transfer full), nullable */
	gboolean has_origin;
	guint64 origin; /* BODY[]<origin> */
} ImapFetch;

/* Decodes "* N FETCH (...)". Values borrowed from @resp stay valid as long
 * as @resp. FALSE with IMAP_ERROR_PROTOCOL if @resp is not a well-formed
 * FETCH. Clear with imap_fetch_clear(). Unknown items are skipped. */
gboolean imap_response_get_fetch(const ImapResponse *resp, ImapFetch *out,
				 GError **error);
void imap_fetch_clear(ImapFetch *fetch);

/* Parses an INTERNALDATE ("17-Jul-1996 02:44:25 -0700") to seconds since
 * the epoch. FALSE if malformed. */
gboolean imap_parse_internaldate(const char *text, gint64 *out_time);
/* The other way: "dd-Mon-yyyy hh:mm:ss +0000" (UTC), or NULL if @time is
 * out of range. (transfer full) */
char *imap_format_internaldate(gint64 time);

/* ---- SEARCH ---------------------------------------------------------- */

typedef struct {
	guint32 first;
	guint32 last; /* >= first */
} ImapUidRange;

/* Appends the ranges of the UID set @text ("1:3,5,9:7") to @out
 * (ImapUidRange). FALSE for anything but numbers, ':' and ',' ('*' is not
 * a UID here). */
gboolean imap_parse_uid_set(const char *text, GArray *out);

/* The UIDs of a "* SEARCH n n ..." or "* ESEARCH ... UID ALL set"
 * response, appended to @out (ImapUidRange). FALSE if @resp is neither or
 * is malformed; an ESEARCH without ALL (no match) gives TRUE and nothing. */
gboolean imap_response_get_search(const ImapResponse *resp, GArray *out);

/* ---- QUOTA ----------------------------------------------------------- */

typedef struct {
	/* Each -1 where the response does not name the resource. STORAGE
	 * counts units of 1024 octets (RFC 9208 §5.1). */
	gint64 storage_used, storage_limit;
	gint64 messages_used, messages_limit;
} ImapQuota;

/* Decodes "* QUOTA root (STORAGE used limit MESSAGE used limit ...)"
 * (RFC 9208 §7.1; RFC 2087 the same); resources it does not know are
 * skipped. FALSE if @resp is no QUOTA or is malformed. */
gboolean imap_response_get_quota(const ImapResponse *resp, ImapQuota *out);

/* ---- LIST ------------------------------------------------------------ */

typedef enum {
	IMAP_MBOX_NOSELECT = 1 << 0,
	IMAP_MBOX_NOINFERIORS = 1 << 1,
	IMAP_MBOX_HASCHILDREN = 1 << 2,
	IMAP_MBOX_HASNOCHILDREN = 1 << 3,
	IMAP_MBOX_NONEXISTENT = 1 << 4,
	IMAP_MBOX_TRASH = 1 << 5, /* RFC 6154 special use */
	IMAP_MBOX_JUNK = 1 << 6,
	IMAP_MBOX_SENT = 1 << 7,
	IMAP_MBOX_DRAFTS = 1 << 8,
	IMAP_MBOX_ARCHIVE = 1 << 9,
	IMAP_MBOX_ALL = 1 << 10,
	IMAP_MBOX_FLAGGED = 1 << 11,
} ImapMailboxAttr;

typedef struct {
	char *name;	/* as on the wire (modified UTF-7); full */
	char delimiter; /* '\0' for NIL */
	guint attrs;	/* ImapMailboxAttr bits */
} ImapListItem;

/* Decodes "* LIST (attrs) delim name" (also LSUB). */
gboolean imap_response_get_list(const ImapResponse *resp, ImapListItem *out,
				GError **error);
void imap_list_item_clear(ImapListItem *item);

/* ---- SELECT / EXAMINE ------------------------------------------------ */

typedef struct {
	guint32 uidvalidity;
	guint32 uidnext; /* 0 if the server did not say */
	guint32 exists;
	guint64 highestmodseq; /* 0: NOMODSEQ or no CONDSTORE */
	gboolean readonly;     /* tagged OK [READ-ONLY] */
	char **flags;	       /* FLAGS; nullable; (transfer full) */
	char **permanentflags; /* PERMANENTFLAGS; nullable */
} ImapMailboxInfo;

/* Folds one response received during SELECT (untagged or the tagged
 * completion) into @info. Responses it does not know are ignored. */
void imap_mailbox_info_update(ImapMailboxInfo *info, const ImapResponse *resp);
void imap_mailbox_info_clear(ImapMailboxInfo *info);

#endif
