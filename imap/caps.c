/* imap/caps.c — capability words to ImapCaps bits.
 *
 * Capabilities arrive either as "* CAPABILITY w1 w2 ..." or inside a
 * "[CAPABILITY w1 w2 ...]" response code of a greeting or a completion.
 * Each word is looked up in one table, ignoring ASCII case (RFC 9051 §9:
 * capability names are case-insensitive). The only implication added is
 * UTF8=ONLY -> UTF8_ACCEPT (RFC 6855 §3). Pure functions, any thread.
 */
#include "imap/caps.h"

#include <string.h>

static const struct {
	const char *word;
	guint bits;
} caps_table[] = {
	{"IMAP4REV1", IMAP_CAP_IMAP4REV1},
	{"IMAP4REV2", IMAP_CAP_IMAP4REV2},
	{"STARTTLS", IMAP_CAP_STARTTLS},
	{"LOGINDISABLED", IMAP_CAP_LOGINDISABLED},
	{"AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN},
	{"AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER},
	{"AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2},
	{"COMPRESS=DEFLATE", IMAP_CAP_COMPRESS_DEFLATE},
	{"SASL-IR", IMAP_CAP_SASL_IR},
	{"LITERAL+", IMAP_CAP_LITERALPLUS},
	{"LITERAL-", IMAP_CAP_LITERALMINUS},
	{"UIDPLUS", IMAP_CAP_UIDPLUS},
	{"MOVE", IMAP_CAP_MOVE},
	{"CONDSTORE", IMAP_CAP_CONDSTORE},
	{"QRESYNC", IMAP_CAP_QRESYNC},
	{"ENABLE", IMAP_CAP_ENABLE},
	{"IDLE", IMAP_CAP_IDLE},
	{"SPECIAL-USE", IMAP_CAP_SPECIAL_USE},
	{"LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED},
	{"LIST-STATUS", IMAP_CAP_LIST_STATUS},
	{"UTF8=ACCEPT", IMAP_CAP_UTF8_ACCEPT},
	{"UTF8=ONLY", IMAP_CAP_UTF8_ACCEPT},
	{"ESEARCH", IMAP_CAP_ESEARCH},
	{"BINARY", IMAP_CAP_BINARY},
	{"NAMESPACE", IMAP_CAP_NAMESPACE},
	{"ID", IMAP_CAP_ID},
	{"NOTIFY", IMAP_CAP_NOTIFY},
	{"QUOTA", IMAP_CAP_QUOTA},
};

static guint caps_word(const char *word)
{
	for (gsize i = 0; i < G_N_ELEMENTS(caps_table); i++)
		if (g_ascii_strcasecmp(word, caps_table[i].word) == 0)
			return caps_table[i].bits;
	return 0;
}

guint imap_caps_from_words(const char *const *words)
{
	guint caps = 0;

	for (gsize i = 0; words && words[i]; i++)
		caps |= caps_word(words[i]);
	return caps;
}

gboolean imap_caps_from_response(const ImapResponse *resp, guint *out_caps)
{
	guint caps = 0;

	g_return_val_if_fail(out_caps != NULL, FALSE);
	if (!resp)
		return FALSE;

	if (resp->kind == IMAP_RESPONSE_UNTAGGED && resp->name &&
	    strcmp(resp->name, "CAPABILITY") == 0) {
		for (guint i = 0; i < imap_value_n_items(resp->args); i++) {
			const ImapValue *v = imap_value_item(resp->args, i);

			if (v->type == IMAP_VALUE_ATOM)
				caps |= caps_word(v->str);
		}
	} else if (resp->status != IMAP_STATUS_NONE && resp->code &&
		   strcmp(resp->code, "CAPABILITY") == 0) {
		g_auto(GStrv) words = g_strsplit(
			resp->code_arg ? resp->code_arg : "", " ", -1);

		caps = imap_caps_from_words((const char *const *)words);
	} else {
		return FALSE;
	}
	*out_caps = caps;
	return TRUE;
}
