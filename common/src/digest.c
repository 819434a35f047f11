/*
 * digest.c -- a digest of everything in a resolver configuration that
 * decides which answers are trusted, for caches that outlive one
 * resolver (a host's second tier: dance_cache_tier).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "dance_int.h"

/* A length, then the octets: no two field sequences hash alike. */
static int
put(EVP_MD_CTX *md, const void *p, size_t len)
{
	unsigned char l[8];

	for (int i = 0; i < 8; i++)
		l[i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return EVP_DigestUpdate(md, l, sizeof(l)) == 1
		&& EVP_DigestUpdate(md, p, len) == 1;
}

static int
put_str(EVP_MD_CTX *md, const char *s)
{
	return s == NULL ? put(md, "", 0) && put(md, "", 0)
		: put(md, "1", 1) && put(md, s, strlen(s));
}

static int
put_u32(EVP_MD_CTX *md, uint32_t v)
{
	unsigned char b[4] = { v >> 24, v >> 16, v >> 8, v };

	return put(md, b, sizeof(b));
}

/* The file's name and its content (what a reload may change in
 * place). */
static int
put_file(EVP_MD_CTX *md, const char *what, const char *file,
	struct dance_error *err)
{
	unsigned char buf[8192];
	FILE *f;
	size_t n;
	int ok;

	if (file == NULL)
		return put_str(md, NULL) ? DANCE_OK : DANCE_ERR_INTERNAL;
	if ((f = fopen(file, "r")) == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "%s \"%s\": %s",
			what, file, strerror(errno));
	ok = put_str(md, file);
	while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = EVP_DigestUpdate(md, buf, n) == 1;
	if (ferror(f))
		ok = 0;
	(void)fclose(f);
	if (!ok)
		return dance_err_set(err, DANCE_ERR_CONFIG, "%s \"%s\": "
			"cannot read it", what, file);
	return put(md, "", 0) ? DANCE_OK : DANCE_ERR_INTERNAL;
}

static int
put_list(EVP_MD_CTX *md, const char *const *l)
{
	for (; l != NULL && *l != NULL; l++) {
		if (!put_str(md, *l))
			return 0;
	}
	return put(md, "", 0);
}

int
dance_resolver_cfg_digest(const struct dance_resolver_cfg *cfg,
	unsigned char out[DANCE_DIGEST_LEN], struct dance_error *err)
{
	const char *const *p;
	EVP_MD_CTX *md;
	int ret = DANCE_ERR_INTERNAL;

	if (cfg == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "no configuration");
	if ((md = EVP_MD_CTX_new()) == NULL)
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
		|| !put_str(md, "dance trust 1"))
		goto done;
	for (p = cfg->trust_anchor_files; p != NULL && *p != NULL; p++) {
		if ((ret = put_file(md, "trust anchor file", *p, err))
			!= DANCE_OK)
			goto done;
	}
	ret = DANCE_ERR_INTERNAL;
	if (!put(md, "", 0) || !put_u32(md, cfg->trust_ad != 0)
		|| !put_list(md, cfg->forwarders)
		|| !put_u32(md, cfg->forward_tls != 0))
		goto done;
	if ((ret = put_file(md, "tls_ca_file", cfg->tls_ca_file, err))
		!= DANCE_OK
		|| (ret = put_file(md, "unbound_conf", cfg->unbound_conf, err))
		!= DANCE_OK)
		goto done;
	ret = DANCE_ERR_INTERNAL;
	if (!put_u32(md, cfg->min_ttl) || !put_u32(md, cfg->max_ttl)
		|| !put_u32(md, cfg->neg_ttl) || !put_u32(md, cfg->fail_ttl)
		|| EVP_DigestFinal_ex(md, out, NULL) != 1)
		goto done;
	ret = DANCE_OK;
done:
	EVP_MD_CTX_free(md);
	if (ret == DANCE_ERR_INTERNAL)
		dance_err_set(err, ret, "SHA-256 failed");
	return ret;
}
