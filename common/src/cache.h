/*
 * cache.h -- internal: answer construction helpers and the resolver's
 * answer cache (a bounded LRU with monotonic expiry).
 *
 * The cache is not locked: its owner (the resolver) serialises access.
 */
#ifndef DANCE_CACHE_H
#define DANCE_CACHE_H

#include <stdint.h>
#include "dance.h"

/* A new, referenced copy of a with from_cache set as given. */
struct dance_answer *dance_answer_copy(const struct dance_answer *a,
	int from_cache);

/* Milliseconds on the monotonic clock. */
uint64_t dance_now_ms(void);

/* Hash of a lower-cased name, for the resolver's tables. */
uint32_t dance_name_hash(const char *s);

struct dance_cache;

/* max entries; 0 gives a cache that stores nothing.  NULL on no memory. */
struct dance_cache *dance_cache_new(size_t max);
void dance_cache_free(struct dance_cache *c);

/* Referenced answer for name (lower-cased) if present and not expired at
 * now (ms); an expired entry is dropped.  A hit becomes most recent. */
struct dance_answer *dance_cache_get(struct dance_cache *c, const char *name,
	uint64_t now);

/* Insert or replace the entry for a->name, valid until expire (ms).  The
 * cache takes its own reference; the least recently used entry goes
 * when full.  Returns 0 when nothing was stored (disabled, no memory). */
int dance_cache_put(struct dance_cache *c, struct dance_answer *a,
	uint64_t expire);

/* Entries currently held (expired ones included until touched). */
size_t dance_cache_count(const struct dance_cache *c);

/* Entries dropped because the cache was full. */
unsigned long dance_cache_evictions(const struct dance_cache *c);

#endif /* DANCE_CACHE_H */
