/* imap/config.c — copying and freeing ImapConfig.
 *
 * Plain data; the only care taken is that the password is wiped before its
 * memory is given back.
 */
#include "imap/config.h"

#include <string.h>

#include <openssl/crypto.h>

ImapConfig *imap_config_copy(const ImapConfig *cfg)
{
	ImapConfig *copy;

	g_return_val_if_fail(cfg != NULL, NULL);

	copy = g_new0(ImapConfig, 1);
	*copy = *cfg;
	copy->host = g_strdup(cfg->host);
	copy->cafile = g_strdup(cfg->cafile);
	copy->user = g_strdup(cfg->user);
	copy->password = g_strdup(cfg->password);
	copy->spool_dir = g_strdup(cfg->spool_dir);
	return copy;
}

void imap_config_free(ImapConfig *cfg)
{
	if (cfg == NULL)
		return;
	if (cfg->password != NULL) {
		OPENSSL_cleanse(cfg->password, strlen(cfg->password));
		g_free(cfg->password);
	}
	g_free(cfg->host);
	g_free(cfg->cafile);
	g_free(cfg->user);
	g_free(cfg->spool_dir);
	g_free(cfg);
}
