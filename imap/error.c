/* imap/error.c — the IMAPFS_IMAP_ERROR domain.
 *
 * Maps the response code of a failed command (RFC 5530 and RFC 9051 §7.1)
 * to the error code the layers above act on; fs/errmap.c turns that into an
 * errno. Pure functions, callable from any thread.
 */
#include "imap/error.h"

GQuark imapfs_imap_error_quark(void)
{
	return g_quark_from_static_string("imapfs-imap-error-quark");
}

ImapErrorCode imap_error_code_from_response(const char *code, gboolean is_bad)
{
	static const struct {
		const char *code;
		ImapErrorCode error;
	} map[] = {
		{"NONEXISTENT", IMAP_ERROR_NONEXISTENT},
		{"TRYCREATE", IMAP_ERROR_NONEXISTENT},
		{"ALREADYEXISTS", IMAP_ERROR_ALREADYEXISTS},
		{"OVERQUOTA", IMAP_ERROR_OVERQUOTA},
		{"NOPERM", IMAP_ERROR_NOPERM},
		{"TOOBIG", IMAP_ERROR_TOOBIG},
		/* RFC 5530: it can never succeed, e.g. a keyword too long. */
		{"CANNOT", IMAP_ERROR_UNSUPPORTED},
		{"LIMIT", IMAP_ERROR_TOOBIG},
		{"AUTHENTICATIONFAILED", IMAP_ERROR_AUTH},
		{"AUTHORIZATIONFAILED", IMAP_ERROR_AUTH},
		{"EXPUNGEISSUED", IMAP_ERROR_EXPUNGED},
	};

	if (code) {
		for (gsize i = 0; i < G_N_ELEMENTS(map); i++)
			if (g_ascii_strcasecmp(code, map[i].code) == 0)
				return map[i].error;
	}
	return is_bad ? IMAP_ERROR_BAD : IMAP_ERROR_FAILED;
}
