/*
 * cache.c -- the resolver's answer cache: a chained hash table keyed by
 * the lower-cased name, a doubly linked LRU list for eviction, and an
 * expiry time per entry on the monotonic clock (wall-clock jumps must not
 * keep a TLSA set alive, or drop it early).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dance_int.h"
#include "cache.h"

/* Bucket array bound: beyond it chains grow instead of the array. */
#define CACHE_MAX_BUCKETS (1u << 20)

struct centry {
	struct centry *hnext;		/* hash chain */
	struct centry *prev, *next;	/* LRU list, head = most recent */
	struct dance_answer *a;		/* the key is a->name */
	uint64_t expire;
	uint32_t hash;
};

struct dance_cache {
	size_t max, count;
	unsigned long evictions;	/* full: LRU entry dropped */
	size_t nbuckets;		/* power of two */
	struct centry **buckets;
	struct centry *head, *tail;
};

uint64_t
dance_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* FNV-1a: short keys, no adversarial pressure beyond the allow-list. */
uint32_t
dance_name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

struct dance_cache *
dance_cache_new(size_t max)
{
	struct dance_cache *c;
	size_t nb = 16;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->max = max;
	while (nb < max && nb < CACHE_MAX_BUCKETS)
		nb <<= 1;
	c->nbuckets = nb;
	if ((c->buckets = calloc(nb, sizeof(*c->buckets))) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static void
lru_unlink(struct dance_cache *c, struct centry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push_front(struct dance_cache *c, struct centry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

/* Find the entry; *pp receives the link that points to it. */
static struct centry *
find(struct dance_cache *c, const char *name, uint32_t h,
	struct centry ***pp)
{
	struct centry **p = &c->buckets[h & (c->nbuckets - 1)];

	for (; *p != NULL; p = &(*p)->hnext) {
		if ((*p)->hash == h && strcmp((*p)->a->name, name) == 0)
			break;
	}
	*pp = p;
	return *p;
}

static void
remove_entry(struct dance_cache *c, struct centry *e)
{
	struct centry **p;

	if (find(c, e->a->name, e->hash, &p) == e)
		*p = e->hnext;
	lru_unlink(c, e);
	dance_answer_unref(e->a);
	free(e);
	c->count--;
}

void
dance_cache_free(struct dance_cache *c)
{
	struct centry *e, *next;

	if (c == NULL)
		return;
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		dance_answer_unref(e->a);
		free(e);
	}
	free(c->buckets);
	free(c);
}

struct dance_answer *
dance_cache_get(struct dance_cache *c, const char *name, uint64_t now)
{
	struct centry *e, **p;

	if (c == NULL || c->count == 0)
		return NULL;
	if ((e = find(c, name, dance_name_hash(name), &p)) == NULL)
		return NULL;
	if (now >= e->expire) {
		remove_entry(c, e);
		return NULL;
	}
	lru_unlink(c, e);
	lru_push_front(c, e);
	dance_answer_ref(e->a);
	return e->a;
}

int
dance_cache_put(struct dance_cache *c, struct dance_answer *a,
	uint64_t expire)
{
	struct centry *e, **p;
	uint32_t h;

	if (c == NULL || c->max == 0 || a == NULL)
		return 0;
	h = dance_name_hash(a->name);
	if ((e = find(c, a->name, h, &p)) != NULL) {
		/* Replace in place: the newer answer wins. */
		dance_answer_ref(a);
		dance_answer_unref(e->a);
		e->a = a;
		e->expire = expire;
		lru_unlink(c, e);
		lru_push_front(c, e);
		return 1;
	}
	if (c->count >= c->max) {
		c->evictions++;
		remove_entry(c, c->tail);
		/* The chain may have changed: look the slot up again. */
		(void)find(c, a->name, h, &p);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return 0;
	dance_answer_ref(a);
	e->a = a;
	e->expire = expire;
	e->hash = h;
	*p = e;
	lru_push_front(c, e);
	c->count++;
	return 1;
}

size_t
dance_cache_count(const struct dance_cache *c)
{
	return c == NULL ? 0 : c->count;
}

unsigned long
dance_cache_evictions(const struct dance_cache *c)
{
	return c == NULL ? 0 : c->evictions;
}
