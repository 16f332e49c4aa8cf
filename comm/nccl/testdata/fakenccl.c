// A fake libnccl.so.2 for comm/nccl's tests on machines without a GPU: the
// NCCL calls comm/nccl makes, with NCCL's signatures, on host memory (a
// "device pointer" is a host address), for ranks that are threads of one
// process. Enough NCCL semantics to run the all-reduce and the bootstrap:
// communicators rendezvous on their unique id; ncclSend/ncclRecv match in
// FIFO order per (sender, receiver); inside ncclGroupStart/End they are
// queued and ncclGroupEnd posts every send (copying the data) before it
// waits for the receives, so a group of sends and receives cannot deadlock.
//
// Build variants (the tests compile them with cc):
//   -DFAKE_OMIT_SEND       no ncclSend: the loader must name the missing symbol
//   FAKE_NCCL_VERSION=2603 (environment) reports NCCL 2.6.3: too old
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int ncclResult_t;
typedef struct { char internal[128]; } ncclUniqueId;
enum { ncclSuccess = 0, ncclSystemError = 2, ncclInternalError = 3, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };

#define MAXRANKS 64
#define MAXOPS 1024

typedef struct msg {
	struct msg *next;
	size_t bytes;
	char data[];
} msg;

typedef struct group {
	ncclUniqueId id;
	int nranks, joined;
	msg *box[MAXRANKS][MAXRANKS]; // box[src][dst], FIFO
	struct group *next;
} group;

typedef struct fakecomm {
	group *g;
	int rank;
} fakecomm;

typedef struct {
	int send; // 1 send, 0 recv
	void *buf;
	size_t bytes;
	int peer;
	fakecomm *c;
} op;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static group *groups;
static unsigned long long idcounter;

// Per-thread group state, as NCCL keeps it.
static __thread int depth;
static __thread op ops[MAXOPS];
static __thread int nops;

static size_t dtsize(int dt) {
	switch (dt) {
	case 0: case 1: return 1;
	case 2: case 3: case 7: return 4;
	case 4: case 5: case 8: return 8;
	case 6: case 9: return 2;
	}
	return 0;
}

ncclResult_t ncclGetVersion(int *v) {
	const char *e = getenv("FAKE_NCCL_VERSION");
	*v = e ? atoi(e) : 22105;
	return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
	switch (r) {
	case ncclSuccess: return "no error";
	case ncclSystemError: return "unhandled system error (fake)";
	case ncclInternalError: return "internal error (fake)";
	case ncclInvalidArgument: return "invalid argument (fake)";
	case ncclInvalidUsage: return "invalid usage (fake)";
	}
	return "unknown result code (fake)";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
	if (getenv("FAKE_NCCL_FAIL_ID")) return ncclSystemError;
	pthread_mutex_lock(&mu);
	unsigned long long n = ++idcounter;
	pthread_mutex_unlock(&mu);
	memset(id, 0, sizeof *id);
	snprintf(id->internal, sizeof id->internal, "fake-nccl-%d-%llu", (int)getpid(), n);
	return ncclSuccess;
}

ncclResult_t ncclCommInitRank(void **out, int nranks, ncclUniqueId id, int rank) {
	if (nranks < 1 || nranks > MAXRANKS || rank < 0 || rank >= nranks) return ncclInvalidArgument;
	pthread_mutex_lock(&mu);
	group *g;
	for (g = groups; g; g = g->next) {
		if (memcmp(&g->id, &id, sizeof id) == 0) break;
	}
	if (!g) {
		g = calloc(1, sizeof *g);
		g->id = id;
		g->nranks = nranks;
		g->next = groups;
		groups = g;
	}
	if (g->nranks != nranks) {
		pthread_mutex_unlock(&mu);
		return ncclInvalidUsage;
	}
	g->joined++;
	pthread_cond_broadcast(&cv);
	while (g->joined < g->nranks) pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	fakecomm *c = calloc(1, sizeof *c);
	c->g = g;
	c->rank = rank;
	*out = c;
	return ncclSuccess;
}

ncclResult_t ncclCommDestroy(void *c) {
	free(c);
	return ncclSuccess;
}

ncclResult_t ncclCommAbort(void *c) { return ncclCommDestroy(c); }

static void post(fakecomm *c, int peer, const void *buf, size_t bytes) {
	msg *m = malloc(sizeof *m + bytes);
	m->next = NULL;
	m->bytes = bytes;
	memcpy(m->data, buf, bytes);
	pthread_mutex_lock(&mu);
	msg **p = &c->g->box[c->rank][peer];
	while (*p) p = &(*p)->next;
	*p = m;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static ncclResult_t take(fakecomm *c, int peer, void *buf, size_t bytes) {
	pthread_mutex_lock(&mu);
	msg **p = &c->g->box[peer][c->rank];
	while (!*p) pthread_cond_wait(&cv, &mu);
	msg *m = *p;
	*p = m->next;
	pthread_mutex_unlock(&mu);
	ncclResult_t r = ncclSuccess;
	if (m->bytes != bytes) {
		fprintf(stderr, "fakenccl: rank %d receives %zu bytes from rank %d, which sent %zu\n", c->rank, bytes, peer, m->bytes);
		r = ncclInvalidUsage;
	} else {
		memcpy(buf, m->data, bytes);
	}
	free(m);
	return r;
}

static ncclResult_t enqueue(int send, void *buf, size_t count, int dt, int peer, void *comm) {
	fakecomm *c = comm;
	size_t bytes = count * dtsize(dt);
	if (!c || peer < 0 || peer >= c->g->nranks || dtsize(dt) == 0) return ncclInvalidArgument;
	if (depth == 0) {
		if (send) {
			post(c, peer, buf, bytes);
			return ncclSuccess;
		}
		return take(c, peer, buf, bytes);
	}
	if (nops == MAXOPS) return ncclInternalError;
	ops[nops++] = (op){send, buf, bytes, peer, c};
	return ncclSuccess;
}

#ifndef FAKE_OMIT_SEND
ncclResult_t ncclSend(const void *buf, size_t count, int dt, int peer, void *comm, void *stream) {
	(void)stream;
	return enqueue(1, (void *)buf, count, dt, peer, comm);
}
#endif

ncclResult_t ncclRecv(void *buf, size_t count, int dt, int peer, void *comm, void *stream) {
	(void)stream;
	return enqueue(0, buf, count, dt, peer, comm);
}

ncclResult_t ncclGroupStart(void) {
	depth++;
	return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
	if (depth == 0) return ncclInvalidUsage;
	if (--depth > 0) return ncclSuccess;
	ncclResult_t r = ncclSuccess;
	for (int i = 0; i < nops; i++) {
		if (ops[i].send) post(ops[i].c, ops[i].peer, ops[i].buf, ops[i].bytes);
	}
	for (int i = 0; i < nops; i++) {
		if (!ops[i].send) {
			ncclResult_t e = take(ops[i].c, ops[i].peer, ops[i].buf, ops[i].bytes);
			if (r == ncclSuccess) r = e;
		}
	}
	nops = 0;
	return r;
}

ncclResult_t ncclBroadcast(const void *src, void *dst, size_t count, int dt, int root, void *comm, void *stream) {
	fakecomm *c = comm;
	size_t bytes = count * dtsize(dt);
	(void)stream;
	if (!c || root < 0 || root >= c->g->nranks) return ncclInvalidArgument;
	if (c->rank == root) {
		for (int q = 0; q < c->g->nranks; q++) {
			if (q != root) post(c, q, src, bytes);
		}
		memmove(dst, src, bytes);
		return ncclSuccess;
	}
	return take(c, root, dst, bytes);
}
