/* imap/response.c — the ImapResponse tree and what it means.
 *
 * The parser builds trees of ImapValue without knowing what any of it means;
 * this file decodes the responses imapfs acts on: FETCH items, LIST/LSUB,
 * response codes and the untagged data of SELECT. The server is treated as
 * hostile: every accessor checks types and ranges and reports a mismatch
 * (IMAP_ERROR_PROTOCOL, or FALSE) instead of asserting.
 *
 * Decoded structs borrow from the response where the header says so (the
 * body values); everything else is copied. Pure functions, no
 * locks: a response belongs to whoever holds it.
 */
#include "imap/response.h"

#include <string.h>
#include <unistd.h>

#include "imap/error.h"

ImapResponse *imap_response_new(void)
{
	return g_new0(ImapResponse, 1);
}

void imap_response_free(ImapResponse *resp)
{
	if (!resp)
		return;
	g_free(resp->tag);
	g_free(resp->code);
	g_free(resp->code_arg);
	g_free(resp->text);
	g_free(resp->name);
	imap_value_free(resp->args);
	g_free(resp);
}

ImapValue *imap_value_new(ImapValueType type)
{
	ImapValue *v = g_new0(ImapValue, 1);

	v->type = type;
	v->fd = -1;
	if (type == IMAP_VALUE_LIST)
		v->items = g_ptr_array_new_with_free_func(
			(GDestroyNotify)imap_value_free);
	return v;
}

void imap_value_free(ImapValue *value)
{
	if (!value)
		return;
	g_free(value->str);
	if (value->fd >= 0)
		close(value->fd);
	if (value->items)
		g_ptr_array_free(value->items, TRUE);
	g_free(value);
}

const ImapValue *imap_value_item(const ImapValue *list, guint i)
{
	if (!list || list->type != IMAP_VALUE_LIST || !list->items ||
	    i >= list->items->len)
		return NULL;
	return g_ptr_array_index(list->items, i);
}

guint imap_value_n_items(const ImapValue *list)
{
	if (!list || list->type != IMAP_VALUE_LIST || !list->items)
		return 0;
	return list->items->len;
}

gboolean imap_value_is_atom(const ImapValue *v, const char *atom)
{
	return v && v->type == IMAP_VALUE_ATOM && v->str &&
	       g_ascii_strcasecmp(v->str, atom) == 0;
}

static gboolean response_parse_number(const char *s, gsize len,
				      guint64 *out_number)
{
	guint64 n = 0;

	if (len == 0 || len > 20)
		return FALSE;
	for (gsize i = 0; i < len; i++) {
		guint d;

		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		d = s[i] - '0';
		if (n > (G_MAXUINT64 - d) / 10)
			return FALSE;
		n = n * 10 + d;
	}
	*out_number = n;
	return TRUE;
}

gboolean imap_value_get_number(const ImapValue *v, guint64 *out_number)
{
	guint64 n;

	if (!v || v->type != IMAP_VALUE_ATOM || !v->str ||
	    !response_parse_number(v->str, v->len, &n))
		return FALSE;
	if (out_number)
		*out_number = n;
	return TRUE;
}

const char *imap_value_get_string(const ImapValue *v)
{
	if (!v || (v->type != IMAP_VALUE_ATOM && v->type != IMAP_VALUE_STRING))
		return NULL;
	return v->str;
}

/* ---- Response codes -------------------------------------------------- */

gboolean imap_response_code_number(const ImapResponse *resp, const char *code,
				   guint64 *out_number)
{
	g_return_val_if_fail(code != NULL, FALSE);

	if (!resp || !resp->code || g_ascii_strcasecmp(resp->code, code) != 0)
		return FALSE;
	if (!out_number)
		return TRUE;
	return resp->code_arg &&
	       response_parse_number(resp->code_arg, strlen(resp->code_arg),
				     out_number);
}

/* ---- FETCH ----------------------------------------------------------- */

/* A list of atoms as a NULL-terminated strv; NULL if @v is not one. */
static char **response_atom_list(const ImapValue *v)
{
	GPtrArray *out;

	if (!v || v->type != IMAP_VALUE_LIST)
		return NULL;
	out = g_ptr_array_new();
	for (guint i = 0; i < v->items->len; i++) {
		const ImapValue *item = g_ptr_array_index(v->items, i);

		if (item->type != IMAP_VALUE_ATOM) {
			g_ptr_array_add(out, NULL);
			g_strfreev((char **)g_ptr_array_free(out, FALSE));
			return NULL;
		}
		g_ptr_array_add(out, g_strdup(item->str));
	}
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

/* "BODY[section]<origin>" / "BINARY[section]<origin>"; also RFC822,
 * RFC822.HEADER and RFC822.TEXT, the old names of BODY[], BODY[HEADER]
 * and BODY[TEXT]. Returns FALSE if @name is no body item; sets *bad if it
 * looks like one but is malformed. */
static gboolean response_body_item(const char *name, char **out_section,
				   gboolean *out_has_origin,
				   guint64 *out_origin, gboolean *bad)
{
	static const struct {
		const char *name;
		const char *section;
	} rfc822[] = {
		{"RFC822", ""},
		{"RFC822.HEADER", "HEADER"},
		{"RFC822.TEXT", "TEXT"},
	};
	const char *open, *p;
	guint depth = 0;

	*bad = FALSE;
	for (gsize i = 0; i < G_N_ELEMENTS(rfc822); i++) {
		if (g_ascii_strcasecmp(name, rfc822[i].name) == 0) {
			*out_section = g_strdup(rfc822[i].section);
			*out_has_origin = FALSE;
			return TRUE;
		}
	}
	if (g_ascii_strncasecmp(name, "BODY[", 5) == 0)
		open = name + 4;
	else if (g_ascii_strncasecmp(name, "BINARY[", 7) == 0)
		open = name + 6;
	else
		return FALSE;

	for (p = open; *p; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']' && --depth == 0)
			break;
	}
	if (*p != ']') {
		*bad = TRUE;
		return TRUE;
	}
	*out_has_origin = FALSE;
	if (p[1] == '<') {
		const char *num = p + 2;
		const char *close = strchr(num, '>');

		if (!close || close[1] != '\0' ||
		    !response_parse_number(num, close - num, out_origin)) {
			*bad = TRUE;
			return TRUE;
		}
		*out_has_origin = TRUE;
	} else if (p[1] != '\0') {
		*bad = TRUE;
		return TRUE;
	}
	*out_section = g_strndup(open + 1, p - (open + 1));
	return TRUE;
}

static gboolean response_fetch_fail(ImapFetch *out, GError **error,
				    const char *why)
{
	imap_fetch_clear(out);
	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
		    "malformed FETCH response: %s", why);
	return FALSE;
}

static gboolean response_fetch_item(ImapFetch *out, const char *name,
				    const ImapValue *val, const char **why)
{
	guint64 n;
	char *section = NULL;
	gboolean has_origin = FALSE, bad;
	guint64 origin = 0;

	if (g_ascii_strcasecmp(name, "UID") == 0) {
		if (!imap_value_get_number(val, &n) || n == 0 ||
		    n > G_MAXUINT32) {
			*why = "bad UID";
			return FALSE;
		}
		out->uid = (guint32)n;
	} else if (g_ascii_strcasecmp(name, "FLAGS") == 0) {
		char **flags = response_atom_list(val);

		if (!flags) {
			*why = "bad FLAGS";
			return FALSE;
		}
		g_strfreev(out->flags);
		out->flags = flags;
	} else if (g_ascii_strcasecmp(name, "RFC822.SIZE") == 0) {
		if (!imap_value_get_number(val, &out->size)) {
			*why = "bad RFC822.SIZE";
			return FALSE;
		}
		out->has_size = TRUE;
	} else if (g_ascii_strcasecmp(name, "INTERNALDATE") == 0) {
		if (!val || val->type != IMAP_VALUE_STRING ||
		    !imap_parse_internaldate(val->str, &out->internaldate)) {
			*why = "bad INTERNALDATE";
			return FALSE;
		}
		out->has_internaldate = TRUE;
	} else if (g_ascii_strcasecmp(name, "MODSEQ") == 0) {
		if (imap_value_n_items(val) != 1 ||
		    !imap_value_get_number(imap_value_item(val, 0),
					   &out->modseq)) {
			*why = "bad MODSEQ";
			return FALSE;
		}
		out->has_modseq = TRUE;
	} else if (response_body_item(name, &section, &has_origin, &origin,
				      &bad)) {
		if (bad || (val->type != IMAP_VALUE_STRING &&
			    val->type != IMAP_VALUE_SPOOLED &&
			    val->type != IMAP_VALUE_NIL)) {
			g_free(section);
			*why = "bad body item";
			return FALSE;
		}
		/* imapfs asks for one body section a command: two in one
		 * response cannot be told apart (which bytes are the
		 * message?), so neither is taken. */
		if (out->body) {
			g_free(section);
			*why = "two body items";
			return FALSE;
		}
		out->body = val;
		out->body_section = section;
		out->has_origin = has_origin;
		out->origin = origin;
	}
	return TRUE;
}

gboolean imap_response_get_fetch(const ImapResponse *resp, ImapFetch *out,
				 GError **error)
{
	const ImapValue *items;

	g_return_val_if_fail(resp != NULL, FALSE);
	g_return_val_if_fail(out != NULL, FALSE);

	memset(out, 0, sizeof(*out));
	if (resp->kind != IMAP_RESPONSE_UNTAGGED || !resp->name ||
	    strcmp(resp->name, "FETCH") != 0)
		return response_fetch_fail(out, error, "not a FETCH response");
	if (!resp->has_number || resp->number == 0)
		return response_fetch_fail(out, error, "no sequence number");
	items = imap_value_item(resp->args, 0);
	if (!items || items->type != IMAP_VALUE_LIST ||
	    imap_value_n_items(resp->args) != 1 || items->items->len % 2 != 0)
		return response_fetch_fail(out, error, "bad item list");
	out->seq = resp->number;

	for (guint i = 0; i < items->items->len; i += 2) {
		const ImapValue *name = g_ptr_array_index(items->items, i);
		const ImapValue *val = g_ptr_array_index(items->items, i + 1);
		const char *why = NULL;

		if (name->type != IMAP_VALUE_ATOM)
			return response_fetch_fail(out, error,
						   "item name is not an atom");
		if (!response_fetch_item(out, name->str, val, &why))
			return response_fetch_fail(out, error, why);
	}
	return TRUE;
}

void imap_fetch_clear(ImapFetch *fetch)
{
	if (!fetch)
		return;
	g_strfreev(fetch->flags);
	g_free(fetch->body_section);
	memset(fetch, 0, sizeof(*fetch));
}

/* ---- INTERNALDATE ----------------------------------------------------- */

/* Days from 1970-01-01 to @y-@m-@d in the proleptic Gregorian calendar:
 * count days in whole 400-year eras from 0000-03-01, so that the leap day
 * falls at the end of each shifted year. */
static gint64 response_days_from_civil(gint64 y, guint m, guint d)
{
	gint64 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static gboolean response_digits(const char *s, guint n, guint *out)
{
	guint v = 0;

	for (guint i = 0; i < n; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return TRUE;
}

/* RFC 9051 §9: date-time = DQUOTE date-day-fixed "-" date-month "-"
 * date-year SP time SP zone DQUOTE; date-day-fixed = (SP DIGIT) / 2DIGIT.
 * The quotes are already gone here. */
gboolean imap_parse_internaldate(const char *text, gint64 *out_time)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
					   "May", "Jun", "Jul", "Aug",
					   "Sep", "Oct", "Nov", "Dec"};
	static const guint8 mdays[12] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	guint day, month = 0, year, hh, mm, ss, zh, zm, i;
	gint64 t, zone;

	if (!text || strlen(text) != 26)
		return FALSE;
	if (text[0] == ' ') {
		if (!response_digits(text + 1, 1, &day))
			return FALSE;
	} else if (!response_digits(text, 2, &day)) {
		return FALSE;
	}
	if (text[2] != '-' || text[6] != '-' || text[11] != ' ' ||
	    text[14] != ':' || text[17] != ':' || text[20] != ' ' ||
	    (text[21] != '+' && text[21] != '-'))
		return FALSE;
	for (i = 0; i < 12; i++) {
		if (g_ascii_strncasecmp(text + 3, months[i], 3) == 0) {
			month = i + 1;
			break;
		}
	}
	if (month == 0 || !response_digits(text + 7, 4, &year) ||
	    !response_digits(text + 12, 2, &hh) ||
	    !response_digits(text + 15, 2, &mm) ||
	    !response_digits(text + 18, 2, &ss) ||
	    !response_digits(text + 22, 2, &zh) ||
	    !response_digits(text + 24, 2, &zm))
		return FALSE;
	if (day < 1 || day > mdays[month - 1] || hh > 23 || mm > 59 ||
	    ss > 60 || zm > 59)
		return FALSE;
	if (month == 2 && day == 29 &&
	    !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return FALSE;

	t = response_days_from_civil(year, month, day) * 86400 + hh * 3600 +
	    mm * 60 + ss;
	zone = (gint64)zh * 3600 + zm * 60;
	/* "-0700" is 7 hours behind UTC: add them back. */
	t += text[21] == '-' ? zone : -zone;
	if (out_time)
		*out_time = t;
	return TRUE;
}

/* ---- LIST ------------------------------------------------------------ */

static const struct {
	const char *attr;
	guint bits;
} response_mbox_attrs[] = {
	{"\\Noselect", IMAP_MBOX_NOSELECT},
	{"\\NoInferiors", IMAP_MBOX_NOINFERIORS},
	{"\\HasChildren", IMAP_MBOX_HASCHILDREN},
	{"\\HasNoChildren", IMAP_MBOX_HASNOCHILDREN},
	/* RFC 5258 §3: \NonExistent implies \Noselect. */
	{"\\NonExistent", IMAP_MBOX_NONEXISTENT | IMAP_MBOX_NOSELECT},
	{"\\Trash", IMAP_MBOX_TRASH},
	{"\\Junk", IMAP_MBOX_JUNK},
	{"\\Sent", IMAP_MBOX_SENT},
	{"\\Drafts", IMAP_MBOX_DRAFTS},
	{"\\Archive", IMAP_MBOX_ARCHIVE},
	{"\\All", IMAP_MBOX_ALL},
	{"\\Flagged", IMAP_MBOX_FLAGGED},
};

static gboolean response_list_fail(ImapListItem *out, GError **error,
				   const char *why)
{
	imap_list_item_clear(out);
	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
		    "malformed LIST response: %s", why);
	return FALSE;
}

gboolean imap_response_get_list(const ImapResponse *resp, ImapListItem *out,
				GError **error)
{
	const ImapValue *attrs, *delim, *name;

	g_return_val_if_fail(resp != NULL, FALSE);
	g_return_val_if_fail(out != NULL, FALSE);

	memset(out, 0, sizeof(*out));
	if (resp->kind != IMAP_RESPONSE_UNTAGGED || !resp->name ||
	    (strcmp(resp->name, "LIST") != 0 &&
	     strcmp(resp->name, "LSUB") != 0))
		return response_list_fail(out, error, "not a LIST response");
	attrs = imap_value_item(resp->args, 0);
	delim = imap_value_item(resp->args, 1);
	name = imap_value_item(resp->args, 2);
	if (!attrs || attrs->type != IMAP_VALUE_LIST)
		return response_list_fail(out, error, "bad attributes");
	for (guint i = 0; i < attrs->items->len; i++) {
		const ImapValue *a = g_ptr_array_index(attrs->items, i);

		if (a->type != IMAP_VALUE_ATOM)
			return response_list_fail(out, error, "bad attributes");
		for (gsize j = 0; j < G_N_ELEMENTS(response_mbox_attrs); j++)
			if (g_ascii_strcasecmp(
				    a->str, response_mbox_attrs[j].attr) == 0)
				out->attrs |= response_mbox_attrs[j].bits;
	}
	if (delim && delim->type == IMAP_VALUE_NIL) {
		out->delimiter = '\0';
	} else if (delim && delim->type == IMAP_VALUE_STRING &&
		   delim->len == 1 && delim->str[0] != '\0') {
		out->delimiter = delim->str[0];
	} else {
		return response_list_fail(out, error, "bad delimiter");
	}
	/* LIST-EXTENDED data after the name is ignored. */
	if (!name || !imap_value_get_string(name) || name->len == 0 ||
	    strlen(name->str) != name->len)
		return response_list_fail(out, error, "bad mailbox name");
	out->name = g_strdup(name->str);
	return TRUE;
}

void imap_list_item_clear(ImapListItem *item)
{
	if (!item)
		return;
	g_free(item->name);
	memset(item, 0, sizeof(*item));
}

/* ---- SELECT / EXAMINE ------------------------------------------------ */

static void response_code_u32(const ImapResponse *resp, const char *code,
			      guint32 *out)
{
	guint64 n;

	if (imap_response_code_number(resp, code, &n) && n <= G_MAXUINT32)
		*out = (guint32)n;
}

/* "(\Seen \Deleted \*)" -> strv; NULL if not a parenthesised list. */
static char **response_paren_words(const char *arg)
{
	gsize len;
	g_autofree char *inner = NULL;
	char **words;
	GPtrArray *out;

	if (!arg)
		return NULL;
	len = strlen(arg);
	if (len < 2 || arg[0] != '(' || arg[len - 1] != ')')
		return NULL;
	inner = g_strndup(arg + 1, len - 2);
	words = g_strsplit(inner, " ", -1);
	out = g_ptr_array_new();
	for (guint i = 0; words[i]; i++)
		if (*words[i])
			g_ptr_array_add(out, g_strdup(words[i]));
	g_strfreev(words);
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}

void imap_mailbox_info_update(ImapMailboxInfo *info, const ImapResponse *resp)
{
	guint64 n;

	g_return_if_fail(info != NULL);
	if (!resp)
		return;

	if (resp->kind == IMAP_RESPONSE_UNTAGGED && resp->name) {
		if (strcmp(resp->name, "EXISTS") == 0 && resp->has_number) {
			info->exists = resp->number;
		} else if (strcmp(resp->name, "FLAGS") == 0) {
			char **flags = response_atom_list(
				imap_value_item(resp->args, 0));

			if (flags) {
				g_strfreev(info->flags);
				info->flags = flags;
			}
		}
		return;
	}
	if (resp->status != IMAP_STATUS_OK || !resp->code)
		return;

	response_code_u32(resp, "UIDVALIDITY", &info->uidvalidity);
	response_code_u32(resp, "UIDNEXT", &info->uidnext);
	if (imap_response_code_number(resp, "HIGHESTMODSEQ", &n))
		info->highestmodseq = n;
	if (imap_response_code_number(resp, "NOMODSEQ", NULL))
		info->highestmodseq = 0;
	if (imap_response_code_number(resp, "READ-ONLY", NULL))
		info->readonly = TRUE;
	if (imap_response_code_number(resp, "READ-WRITE", NULL))
		info->readonly = FALSE;
	if (imap_response_code_number(resp, "PERMANENTFLAGS", NULL)) {
		char **flags = response_paren_words(resp->code_arg);

		if (flags) {
			g_strfreev(info->permanentflags);
			info->permanentflags = flags;
		}
	}
}

void imap_mailbox_info_clear(ImapMailboxInfo *info)
{
	if (!info)
		return;
	g_strfreev(info->flags);
	g_strfreev(info->permanentflags);
	memset(info, 0, sizeof(*info));
}

char *imap_format_internaldate(gint64 time)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
					   "May", "Jun", "Jul", "Aug",
					   "Sep", "Oct", "Nov", "Dec"};
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(time);

	if (!dt)
		return NULL;
	return g_strdup_printf(
		"%02d-%s-%04d %02d:%02d:%02d +0000",
		g_date_time_get_day_of_month(dt),
		months[g_date_time_get_month(dt) - 1], g_date_time_get_year(dt),
		g_date_time_get_hour(dt), g_date_time_get_minute(dt),
		g_date_time_get_second(dt));
}

gboolean imap_parse_uid_set(const char *text, GArray *out)
{
	g_auto(GStrv) parts = NULL;

	if (!text || !*text)
		return FALSE;
	parts = g_strsplit(text, ",", -1);
	for (guint i = 0; parts[i]; i++) {
		g_auto(GStrv) ends = g_strsplit(parts[i], ":", 3);
		guint64 a, b;
		ImapUidRange r;

		if (!ends[0] || !g_ascii_string_to_unsigned(
					ends[0], 10, 1, G_MAXUINT32, &a, NULL))
			return FALSE;
		b = a;
		if (ends[1] &&
		    (ends[2] || !g_ascii_string_to_unsigned(
					ends[1], 10, 1, G_MAXUINT32, &b, NULL)))
			return FALSE;
		r.first = MIN(a, b);
		r.last = MAX(a, b);
		g_array_append_val(out, r);
	}
	return TRUE;
}

gboolean imap_response_get_quota(const ImapResponse *resp, ImapQuota *out)
{
	const ImapValue *list = imap_value_item(resp->args, 1);
	guint n = imap_value_n_items(list);

	*out = (ImapQuota){-1, -1, -1, -1};
	if (g_strcmp0(resp->name, "QUOTA") != 0 || !list ||
	    list->type != IMAP_VALUE_LIST || n % 3 != 0)
		return FALSE;
	for (guint i = 0; i < n; i += 3) {
		const ImapValue *name = imap_value_item(list, i);
		guint64 used, limit;

		if (!imap_value_get_number(imap_value_item(list, i + 1),
					   &used) ||
		    !imap_value_get_number(imap_value_item(list, i + 2),
					   &limit) ||
		    used > G_MAXINT64 || limit > G_MAXINT64)
			return FALSE;
		if (imap_value_is_atom(name, "STORAGE")) {
			out->storage_used = used;
			out->storage_limit = limit;
		} else if (imap_value_is_atom(name, "MESSAGE")) {
			out->messages_used = used;
			out->messages_limit = limit;
		}
	}
	return TRUE;
}

gboolean imap_response_get_search(const ImapResponse *resp, GArray *out)
{
	guint n = imap_value_n_items(resp->args);

	if (g_strcmp0(resp->name, "SEARCH") == 0) {
		for (guint i = 0; i < n; i++) {
			guint64 uid;
			ImapUidRange r;

			/* RFC 7162 adds "(MODSEQ n)" at the end: skip lists. */
			if (imap_value_item(resp->args, i)->type ==
			    IMAP_VALUE_LIST)
				continue;
			if (!imap_value_get_number(
				    imap_value_item(resp->args, i), &uid) ||
			    uid == 0 || uid > G_MAXUINT32)
				return FALSE;
			r.first = r.last = uid;
			g_array_append_val(out, r);
		}
		return TRUE;
	}
	if (g_strcmp0(resp->name, "ESEARCH") == 0) {
		/* RFC 4731: [(TAG "x")] [UID] *(name value) */
		for (guint i = 0; i + 1 < n; i++) {
			if (imap_value_is_atom(imap_value_item(resp->args, i),
					       "ALL"))
				return imap_parse_uid_set(
					imap_value_get_string(imap_value_item(
						resp->args, i + 1)),
					out);
		}
		return TRUE;
	}
	return FALSE;
}
