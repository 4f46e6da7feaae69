/* imap/error.h — the IMAPFS_IMAP_ERROR domain.
 *
 * Every failure that leaves imap/ is a GError in this domain (or
 * G_IO_ERROR_CANCELLED). The message keeps the server's own words and names
 * the command, e.g. "UID MOVE 812 \"Archive\": NO [OVERQUOTA] Quota exceeded".
 */
#ifndef IMAPFS_IMAP_ERROR_H
#define IMAPFS_IMAP_ERROR_H

#include <glib.h>

#define IMAPFS_IMAP_ERROR (imapfs_imap_error_quark())
GQuark imapfs_imap_error_quark(void);

typedef enum {
	IMAP_ERROR_FAILED,	    /* NO without a code we know */
	IMAP_ERROR_BAD,		    /* BAD: the server rejected our syntax */
	IMAP_ERROR_NONEXISTENT,	    /* [NONEXISTENT], [TRYCREATE] */
	IMAP_ERROR_ALREADYEXISTS,   /* [ALREADYEXISTS] */
	IMAP_ERROR_OVERQUOTA,	    /* [OVERQUOTA] */
	IMAP_ERROR_NOPERM,	    /* [NOPERM] */
	IMAP_ERROR_TOOBIG,	    /* [TOOBIG], [LIMIT] */
	IMAP_ERROR_READONLY,	    /* mailbox selected read-only */
	IMAP_ERROR_AUTH,	    /* login refused */
	IMAP_ERROR_UNAVAILABLE,	    /* no login for now: the server could not
				     * check it ([UNAVAILABLE]) or has no room
				     * ([LIMIT]) */
	IMAP_ERROR_TLS,		    /* handshake or certificate check failed */
	IMAP_ERROR_CONNECT,	    /* could not reach the server */
	IMAP_ERROR_CONNECTION_LOST, /* dropped while a command was out */
	IMAP_ERROR_TIMEOUT,	    /* server silent too long */
	IMAP_ERROR_PROTOCOL,	    /* server sent what we cannot parse */
	IMAP_ERROR_UNSUPPORTED,	    /* server lacks a needed capability */
	IMAP_ERROR_SHUTDOWN,	    /* pool freed before the command ran */
	IMAP_ERROR_INVALID,	    /* we refused to build the command */
	IMAP_ERROR_UIDVALIDITY,	    /* not sent: the mailbox was made anew, its
				     * UIDs name other messages now */
	IMAP_ERROR_EXPUNGED,	    /* [EXPUNGEISSUED]: another client expunged
				     * a message the command names */
} ImapErrorCode;

/* Maps a response code name ("OVERQUOTA", nullable) of a NO/BAD reply to an
 * error code. @is_bad: the reply was BAD rather than NO. */
ImapErrorCode imap_error_code_from_response(const char *code, gboolean is_bad);

#endif
