/* The sandboxes sandpitd knows: an in-memory table (for routing every
 * request without touching the disk) backed by the state database. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "id.h"
#include "json.h"
#include "log.h"
#include "manager.h"
#include "state.h"
#include "util.h"

/* A sandbox sandpitd knows (kept in memory, persisted in the state db). */
struct sbx {
  char *id;
  struct pool *pool;
  int slot;
  int64_t created_ms, last_active_ms, persisted_active_ms;
};

struct sbx_node {
  struct sbx_node *next;
  struct sbx s;
};

/* Chained hash buckets under one mutex. */
struct sandboxes {
  pthread_mutex_t mu;
  struct sbx_node **b;
  size_t cap, n;
};

static size_t bucket_of(struct manager *m, const char *id)
{
  return (size_t)(sp_hash64(id, strlen(id)) & (m->sbx->cap - 1));
}

static struct sbx_node *find_locked(struct manager *m, const char *id)
{
  if (m->sbx->cap == 0)
    return NULL;
  for (struct sbx_node *n = m->sbx->b[bucket_of(m, id)]; n; n = n->next)
    if (strcmp(n->s.id, id) == 0)
      return n;
  return NULL;
}

static void grow_locked(struct manager *m)
{
  size_t cap = m->sbx->cap ? m->sbx->cap * 2 : 1024;
  struct sbx_node **nb = xcalloc(cap, sizeof *nb);
  for (size_t i = 0; i < m->sbx->cap; i++) {
    struct sbx_node *n = m->sbx->b[i];
    while (n) {
      struct sbx_node *next = n->next;
      size_t b = (size_t)(sp_hash64(n->s.id, strlen(n->s.id)) & (cap - 1));
      n->next = nb[b];
      nb[b] = n;
      n = next;
    }
  }
  free(m->sbx->b);
  m->sbx->b = nb;
  m->sbx->cap = cap;
}

static struct sbx_node *insert_locked(struct manager *m, const char *id, struct pool *p, int slot,
                                      int64_t created, int64_t active)
{
  if (m->sbx->n + 1 > m->sbx->cap)
    grow_locked(m);
  struct sbx_node *n = xcalloc(1, sizeof *n);
  n->s.id = xstrdup(id);
  n->s.pool = p;
  n->s.slot = slot;
  n->s.created_ms = created;
  n->s.last_active_ms = n->s.persisted_active_ms = active;
  size_t b = bucket_of(m, id);
  n->next = m->sbx->b[b];
  m->sbx->b[b] = n;
  m->sbx->n++;
  return n;
}

static int load_one(void *ud, const struct sandbox_row *r)
{
  struct manager *m = ud;
  struct pool *p = pool_by_name(m, r->pool);
  if (p == NULL || r->slot < 0 || r->slot >= pool_size(p)) {
    /* its pool is gone or smaller now: keep it, routed afresh */
    p = pool_at(m, 0);
    int slot = pool_config(p)->allocation == SP_ALLOC_MANY_TO_ONE ? sp_slot(r->id, pool_size(p)) : 0;
    sp_warn("sandbox's pool changed; routing it again", LS("sandbox", r->id), LS("pool", r->pool));
    insert_locked(m, r->id, p, slot, r->created_ms, r->last_active_ms);
    return 0;
  }
  insert_locked(m, r->id, p, r->slot, r->created_ms, r->last_active_ms);
  return 0;
}

int sandboxes_load(struct manager *m, struct sp_error **err)
{
  m->sbx = xcalloc(1, sizeof *m->sbx);
  pthread_mutex_init(&m->sbx->mu, NULL);
  pthread_mutex_lock(&m->sbx->mu);
  grow_locked(m);
  int rc = state_sandbox_each(m->state, load_one, m, err);
  pthread_mutex_unlock(&m->sbx->mu);
  sp_info("sandboxes loaded", LI("count", (long long)m->sbx->n));
  return rc;
}

static int free_slot_locked(struct manager *m, struct pool *p)
{
  int size = pool_size(p);
  cleanup_free bool *used = xcalloc((size_t)size, sizeof *used);
  for (size_t i = 0; i < m->sbx->cap; i++)
    for (struct sbx_node *n = m->sbx->b[i]; n; n = n->next)
      if (n->s.pool == p)
        used[n->s.slot] = true;
  for (int k = 0; k < size; k++)
    if (!used[k])
      return k;
  return -1;
}

int sandbox_lookup(struct manager *m, const char *id, struct pool *pool, bool create,
                   struct sbx_ref *out, struct sp_error **err)
{
  if (!sp_id_ok(SP_ID_SANDBOX, id))
    return sp_error_code(err, "INVALID_SANDBOX_ID", 400,
                         "sandbox IDs are " SP_SANDBOX_ID_RULE);
  pthread_mutex_lock(&m->sbx->mu);
  int rc = 0;
  struct sbx_node *n = find_locked(m, id);
  memset(out, 0, sizeof *out);
  if (n) {
    if (pool && pool != n->s.pool) {
      rc = sp_error_code(err, "SANDBOX_POOL_MISMATCH", 409, "sandbox %s lives in pool %s, not %s",
                         id, pool_config(n->s.pool)->class_name, pool_config(pool)->class_name);
      goto out;
    }
  } else if (!create) {
    rc = sp_error_code(err, "SANDBOX_NOT_FOUND", 404, "sandbox %s not found", id);
    goto out;
  } else {
    struct pool *p = pool ? pool : pool_at(m, 0);
    const struct sp_pool *pc = pool_config(p);
    int slot;
    if (pc->allocation == SP_ALLOC_MANY_TO_ONE) {
      slot = sp_slot(id, pool_size(p));
    } else if ((slot = free_slot_locked(m, p)) < 0) {
      rc = sp_error_code(err, "CAPACITY_EXCEEDED", 429,
                         "pool %s gives each sandbox its own instance and all %d are taken",
                         pc->class_name, pool_size(p));
      goto out;
    }
    int64_t now = sp_now_ms();
    struct sandbox_row row = {id, pc->class_name, slot, now, now};
    if (state_sandbox_put(m->state, &row, err) < 0) {
      rc = -1;
      goto out;
    }
    n = insert_locked(m, id, p, slot, now, now);
    out->created = true;
  }
  out->pool = n->s.pool;
  out->slot = n->s.slot;
  out->created_ms = n->s.created_ms;
  out->last_active_ms = n->s.last_active_ms;
out:
  pthread_mutex_unlock(&m->sbx->mu);
  return rc;
}

void sandbox_touch(struct manager *m, const char *id)
{
  pthread_mutex_lock(&m->sbx->mu);
  struct sbx_node *n = find_locked(m, id);
  if (n)
    n->s.last_active_ms = sp_now_ms();
  pthread_mutex_unlock(&m->sbx->mu);
}

int sandbox_forget(struct manager *m, const char *id, struct sp_error **err)
{
  if (state_sandbox_delete(m->state, id, err) < 0)
    return -1;
  pthread_mutex_lock(&m->sbx->mu);
  if (m->sbx->cap) {
    struct sbx_node **pp = &m->sbx->b[bucket_of(m, id)];
    for (; *pp; pp = &(*pp)->next) {
      if (strcmp((*pp)->s.id, id) == 0) {
        struct sbx_node *n = *pp;
        *pp = n->next;
        free(n->s.id);
        free(n);
        m->sbx->n--;
        break;
      }
    }
  }
  pthread_mutex_unlock(&m->sbx->mu);
  return 0;
}

static int cmp_created(const void *a, const void *b)
{
  const struct sbx *x = *(const struct sbx *const *)a, *y = *(const struct sbx *const *)b;
  if (x->created_ms != y->created_ms)
    return x->created_ms < y->created_ms ? -1 : 1;
  return strcmp(x->id, y->id);
}

cJSON *sandboxes_json(struct manager *m, struct pool *pool)
{
  cJSON *arr = cJSON_CreateArray();
  char ts[40];
  pthread_mutex_lock(&m->sbx->mu);
  struct sbx **v = xcalloc(m->sbx->n + 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < m->sbx->cap; i++)
    for (struct sbx_node *n = m->sbx->b[i]; n; n = n->next)
      if (pool == NULL || n->s.pool == pool)
        v[k++] = &n->s;
  qsort(v, k, sizeof *v, cmp_created);
  for (size_t i = 0; i < k; i++) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", v[i]->id);
    cJSON_AddStringToObject(j, "class", pool_config(v[i]->pool)->class_name);
    json_add_int(j, "slot", v[i]->slot);
    cJSON_AddStringToObject(j, "createdAt", sp_iso8601(v[i]->created_ms, ts, sizeof ts));
    cJSON_AddStringToObject(j, "lastActiveAt", sp_iso8601(v[i]->last_active_ms, ts, sizeof ts));
    cJSON_AddItemToArray(arr, j);
  }
  free(v);
  pthread_mutex_unlock(&m->sbx->mu);
  return arr;
}

size_t sandboxes_count(struct manager *m, struct pool *p, int slot)
{
  size_t c = 0;
  pthread_mutex_lock(&m->sbx->mu);
  for (size_t i = 0; i < m->sbx->cap; i++)
    for (struct sbx_node *n = m->sbx->b[i]; n; n = n->next)
      if (n->s.pool == p && n->s.slot == slot)
        c++;
  pthread_mutex_unlock(&m->sbx->mu);
  return c;
}

size_t sandboxes_total(struct manager *m)
{
  pthread_mutex_lock(&m->sbx->mu);
  size_t n = m->sbx->n;
  pthread_mutex_unlock(&m->sbx->mu);
  return n;
}

void sandboxes_flush(struct manager *m)
{
  /* collect under the lock, write without it */
  struct dirty {
    char *id;
    int64_t t;
  } *d = NULL;
  size_t nd = 0;
  pthread_mutex_lock(&m->sbx->mu);
  for (size_t i = 0; i < m->sbx->cap; i++)
    for (struct sbx_node *n = m->sbx->b[i]; n; n = n->next)
      if (n->s.last_active_ms > n->s.persisted_active_ms) {
        d = xreallocarray(d, nd + 1, sizeof *d);
        d[nd].id = xstrdup(n->s.id);
        d[nd].t = n->s.last_active_ms;
        nd++;
        n->s.persisted_active_ms = n->s.last_active_ms;
      }
  pthread_mutex_unlock(&m->sbx->mu);
  for (size_t i = 0; i < nd; i++) {
    struct sp_error *err = NULL;
    if (state_sandbox_touch(m->state, d[i].id, d[i].t, &err) < 0) {
      sp_warn("cannot record activity", LS("error", err->msg));
      sp_error_free(err);
    }
    free(d[i].id);
  }
  free(d);
}

void sandboxes_free(struct manager *m)
{
  for (size_t i = 0; i < m->sbx->cap; i++) {
    struct sbx_node *n = m->sbx->b[i];
    while (n) {
      struct sbx_node *next = n->next;
      free(n->s.id);
      free(n);
      n = next;
    }
  }
  free(m->sbx->b);
  pthread_mutex_destroy(&m->sbx->mu);
  free(m->sbx);
  m->sbx = NULL;
}
