/*
 * gateway/shared.c — see shared.h. Layout: the header (seed, counts, global counters and tables), then
 * one gw_shm_worker per worker; every snapshot area (the retired one first) follows as arrays of atomic
 * words. The mapping is MAP_NORESERVE: a table's pages cost memory only once a counter in them is used.
 */
#include "gateway/shared.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "common/log.h"

typedef struct gw_shm_worker {
	atomic_int pid;
	atomic_bool pool_up, listen_up, started;
	atomic_uint_fast64_t held;                   /* this worker's share of gw_shm.held */
	atomic_uint_fast32_t principal[GW_SHM_TABLE]; /* its share of each principal counter */
	atomic_uint_fast32_t client[GW_SHM_TABLE];
} gw_shm_worker;

typedef struct gw_shm_snap {
	atomic_uint_fast64_t seq; /* odd while being written; 0 = never written */
	atomic_uint_fast64_t words[];
} gw_shm_snap;

struct gw_shm {
	size_t map_len;
	size_t snap_words;
	size_t snap_stride; /* bytes of one gw_shm_snap with its words */
	size_t snaps_off;   /* where the snapshot areas start */
	int workers;
	uint64_t seed;
	atomic_int supervisor;
	atomic_uint_fast64_t restarts;
	atomic_uint_fast64_t held;
	atomic_uint_fast32_t principal[GW_SHM_TABLE];
	atomic_uint_fast32_t client[GW_SHM_TABLE];
	gw_shm_worker w[];
};

static gw_shm_snap *snap_at(const gw_shm *m, int wi)
{
	size_t i = wi == GW_SHM_RETIRED ? 0 : (size_t)wi + 1;
	return (gw_shm_snap *)(void *)((char *)(uintptr_t)m + m->snaps_off + i * m->snap_stride);
}

gw_shm *gw_shm_new(int workers, size_t snap_bytes)
{
	if (workers < 1 || workers > GW_SHM_MAX_WORKERS || snap_bytes % 8 != 0) return NULL;
	size_t words = snap_bytes / 8;
	size_t head = sizeof(gw_shm) + (size_t)workers * sizeof(gw_shm_worker);
	size_t off = (head + 63) & ~(size_t)63;
	size_t stride = (sizeof(gw_shm_snap) + words * sizeof(atomic_uint_fast64_t) + 63) & ~(size_t)63;
	size_t len = off + (size_t)(workers + 1) * stride;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		log_error("cannot map the memory the workers share bytes=%zu", len);
		return NULL;
	}
	/* Fresh anonymous pages are zero: every counter and flag starts at 0, every snapshot unwritten. */
	gw_shm *m = p;
	m->map_len = len;
	m->snap_words = words;
	m->snap_stride = stride;
	m->snaps_off = off;
	m->workers = workers;
	if (getrandom(&m->seed, sizeof m->seed, 0) != (ssize_t)sizeof m->seed) m->seed = (uint64_t)(uintptr_t)p ^ 0x9e3779b97f4a7c15ULL;
	return m;
}

void gw_shm_free(gw_shm *m)
{
	if (m) munmap(m, m->map_len);
}

int gw_shm_workers(const gw_shm *m)
{
	return m->workers;
}

/* ---- caps ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint32_t user_slot(const gw_shm *m, int64_t user_id)
{
	return (uint32_t)(mix64(m->seed ^ (uint64_t)user_id) & (GW_SHM_TABLE - 1));
}

static uint32_t client_slot(const gw_shm *m, const uint8_t key[16])
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	return (uint32_t)(mix64(mix64(m->seed ^ a) ^ b) & (GW_SHM_TABLE - 1));
}

/* Add one to a global counter and check it against `cap` (the increment stays only when within it). */
static bool take64(atomic_uint_fast64_t *c, int64_t cap)
{
	if (atomic_fetch_add(c, 1) + 1 <= (uint64_t)cap) return true;
	atomic_fetch_sub(c, 1);
	return false;
}

static bool take32(atomic_uint_fast32_t *c, int64_t cap)
{
	if ((int64_t)atomic_fetch_add(c, 1) + 1 <= cap) return true;
	atomic_fetch_sub(c, 1);
	return false;
}

/* Order: a global counter is raised before the worker's own share, and the share lowered before the
 * global counter, so the shares never exceed what is in the global counters (see shared.h). */
gw_shm_verdict gw_shm_hold_take(gw_shm *m, int wi, int64_t user_id, const uint8_t client_key[16], int64_t max_total,
                                int64_t max_user, int64_t max_client, gw_shm_place *place)
{
	gw_shm_worker *w = &m->w[wi];
	uint32_t us = user_slot(m, user_id), cs = client_slot(m, client_key);

	if (!take64(&m->held, max_total)) return GW_SHM_FULL;
	if (!take32(&m->principal[us], max_user)) {
		atomic_fetch_sub(&m->held, 1);
		return GW_SHM_PRINCIPAL;
	}
	if (!take32(&m->client[cs], max_client)) {
		atomic_fetch_sub(&m->principal[us], 1);
		atomic_fetch_sub(&m->held, 1);
		return GW_SHM_CLIENT;
	}
	atomic_fetch_add(&w->held, 1);
	atomic_fetch_add(&w->principal[us], 1);
	atomic_fetch_add(&w->client[cs], 1);
	place->user_slot = us;
	place->client_slot = cs;
	return GW_SHM_TAKEN;
}

void gw_shm_hold_put(gw_shm *m, int wi, const gw_shm_place *place)
{
	gw_shm_worker *w = &m->w[wi];
	atomic_fetch_sub(&w->client[place->client_slot], 1);
	atomic_fetch_sub(&w->principal[place->user_slot], 1);
	atomic_fetch_sub(&w->held, 1);
	atomic_fetch_sub(&m->client[place->client_slot], 1);
	atomic_fetch_sub(&m->principal[place->user_slot], 1);
	atomic_fetch_sub(&m->held, 1);
}

uint64_t gw_shm_held(const gw_shm *m)
{
	return atomic_load(&((gw_shm *)(uintptr_t)m)->held);
}

uint64_t gw_shm_worker_held(const gw_shm *m, int wi)
{
	return atomic_load(&((gw_shm *)(uintptr_t)m)->w[wi].held);
}

/* ---- workers ---- */

void gw_shm_set_pid(gw_shm *m, int wi, pid_t pid)
{
	atomic_store(&m->w[wi].pid, (int)pid);
}

pid_t gw_shm_pid(const gw_shm *m, int wi)
{
	return (pid_t)atomic_load(&((gw_shm *)(uintptr_t)m)->w[wi].pid);
}

void gw_shm_set_supervisor(gw_shm *m, pid_t pid)
{
	atomic_store(&m->supervisor, (int)pid);
}

pid_t gw_shm_supervisor(const gw_shm *m)
{
	return (pid_t)atomic_load(&((gw_shm *)(uintptr_t)m)->supervisor);
}

void gw_shm_set_ready(gw_shm *m, int wi, bool pool_up, bool listen_up)
{
	atomic_store(&m->w[wi].pool_up, pool_up);
	atomic_store(&m->w[wi].listen_up, listen_up);
}

void gw_shm_set_started(gw_shm *m, int wi)
{
	atomic_store(&m->w[wi].started, true);
}

bool gw_shm_worker_started(const gw_shm *m, int wi)
{
	return atomic_load(&((gw_shm *)(uintptr_t)m)->w[wi].started);
}

bool gw_shm_all_ready(const gw_shm *m)
{
	gw_shm *mm = (gw_shm *)(uintptr_t)m;
	for (int i = 0; i < m->workers; i++)
		if (!atomic_load(&mm->w[i].pool_up) || !atomic_load(&mm->w[i].listen_up)) return false;
	return true;
}

bool gw_shm_worker_listen_up(const gw_shm *m, int wi)
{
	return atomic_load(&((gw_shm *)(uintptr_t)m)->w[wi].listen_up);
}

void gw_shm_worker_reset(gw_shm *m, int wi)
{
	gw_shm_worker *w = &m->w[wi];
	for (uint32_t i = 0; i < GW_SHM_TABLE; i++) {
		uint_fast32_t n = atomic_exchange(&w->principal[i], 0);
		if (n) atomic_fetch_sub(&m->principal[i], n);
		n = atomic_exchange(&w->client[i], 0);
		if (n) atomic_fetch_sub(&m->client[i], n);
	}
	uint_fast64_t held = atomic_exchange(&w->held, 0);
	if (held) atomic_fetch_sub(&m->held, held);
	atomic_store(&w->pool_up, false);
	atomic_store(&w->listen_up, false);
	atomic_store(&w->started, false);
	atomic_store(&w->pid, 0);
	gw_shm_snap_clear(m, wi);
}

void gw_shm_count_restart(gw_shm *m)
{
	atomic_fetch_add(&m->restarts, 1);
}

uint64_t gw_shm_restarts(const gw_shm *m)
{
	return atomic_load(&((gw_shm *)(uintptr_t)m)->restarts);
}

/* ---- snapshots: a seqlock over atomic words ---- */

void gw_shm_snap_write(gw_shm *m, int wi, const void *data)
{
	gw_shm_snap *s = snap_at(m, wi);
	const unsigned char *p = data;
	uint_fast64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
	if (seq % 2 == 1) seq++; /* a writer that died mid-write (only the supervisor rewrites a slot then) */
	atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < m->snap_words; i++) {
		uint64_t v;
		memcpy(&v, p + i * 8, 8);
		atomic_store_explicit(&s->words[i], v, memory_order_relaxed);
	}
	atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

bool gw_shm_snap_read(const gw_shm *m, int wi, void *data)
{
	gw_shm_snap *s = snap_at(m, wi);
	unsigned char *p = data;
	for (int tries = 0; tries < 1000; tries++) {
		uint_fast64_t a = atomic_load_explicit(&s->seq, memory_order_acquire);
		if (a == 0) return false;
		if (a % 2 == 1) continue;
		for (size_t i = 0; i < m->snap_words; i++) {
			uint64_t v = atomic_load_explicit(&s->words[i], memory_order_relaxed);
			memcpy(p + i * 8, &v, 8);
		}
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == a) return true;
	}
	return false; /* a writer stuck mid-write (it died): treat as not published */
}

void gw_shm_snap_clear(gw_shm *m, int wi)
{
	gw_shm_snap *s = snap_at(m, wi);
	atomic_store(&s->seq, 0);
}
