/*
 * budget.c -- the waiting budget: how many clients of a server wait for
 * DNS at once, in all and per allow-list entry (the entry that admitted
 * the name), so that the names of one entry whose DNS servers do not
 * answer cannot hold every waiting place.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

/* ------------------------------------------------------------------ */
/* Waiting budget                                                      */
/* ------------------------------------------------------------------ */

/* The slot of entry, or a free one (grown when none is). */
static struct budget_slot *
budget_slot(struct dance_tls_server *srv, const char *entry)
{
	struct budget_slot *free_slot = NULL, *n;
	size_t i, cap;

	for (i = 0; i < srv->nslots; i++) {
		if (srv->slots[i].waiting == 0) {
			if (free_slot == NULL)
				free_slot = &srv->slots[i];
		} else if (srv->slots[i].entry == entry) {
			return &srv->slots[i];
		}
	}
	if (free_slot != NULL) {
		free_slot->entry = entry;
		return free_slot;
	}
	cap = srv->nslots == 0 ? 16 : srv->nslots * 2;
	if ((n = realloc(srv->slots, cap * sizeof(*n))) == NULL)
		return NULL;
	memset(n + srv->nslots, 0, (cap - srv->nslots) * sizeof(*n));
	srv->slots = n;
	free_slot = &n[srv->nslots];
	srv->nslots = cap;
	free_slot->entry = entry;
	return free_slot;
}

/* Take a place for c in the waiting budget: DANCE_OK, or
 * DANCE_ERR_OVERLOAD (over a cap: no query is made then) or
 * DANCE_ERR_NOMEM, with why filled. */
int
dance_budget_enter(struct dance_tls_server *srv, struct conn_priv *c,
	char *why, size_t whylen)
{
	struct budget_slot *slot;
	int rc = DANCE_OK;

	if (srv->cfg.max_waiting == 0 && srv->cfg.max_waiting_per_entry == 0)
		return DANCE_OK;
	why[0] = '\0';
	(void)pthread_mutex_lock(&srv->budget_mu);
	if (srv->cfg.max_waiting > 0 && srv->waiting >= srv->cfg.max_waiting) {
		(void)snprintf(why, whylen, "%u already waiting for DNS "
			"(global cap)", srv->waiting);
		rc = DANCE_ERR_OVERLOAD;
	} else if ((slot = budget_slot(srv, c->entry)) == NULL) {
		(void)snprintf(why, whylen, "out of memory");
		rc = DANCE_ERR_NOMEM;
	} else if (srv->cfg.max_waiting_per_entry > 0 &&
	    slot->waiting >= srv->cfg.max_waiting_per_entry) {
		(void)snprintf(why, whylen, "%u already waiting for DNS "
			"for allow entry \"%.100s\" (per-entry cap)",
			slot->waiting, c->entry != NULL ? c->entry : "?");
		rc = DANCE_ERR_OVERLOAD;
	} else {
		slot->waiting++;
		srv->waiting++;
		c->holds_budget = 1;
	}
	(void)pthread_mutex_unlock(&srv->budget_mu);
	return rc;
}

void
dance_budget_leave(struct dance_tls_server *srv, struct conn_priv *c)
{
	size_t i;

	if (srv == NULL || !c->holds_budget)
		return;
	(void)pthread_mutex_lock(&srv->budget_mu);
	for (i = 0; i < srv->nslots; i++) {
		if (srv->slots[i].waiting > 0 &&
		    srv->slots[i].entry == c->entry) {
			srv->slots[i].waiting--;
			break;
		}
	}
	srv->waiting--;
	c->holds_budget = 0;
	(void)pthread_mutex_unlock(&srv->budget_mu);
}

