/*
 * fs_internal: what the files of fs/ share — the daemon's state, the inode
 * table, open files (struct fs_file) — and nothing outside fs/ sees.
 *
 * Locking: the inode table has one mutex (fs->nodes_lock), held only while
 * a node is looked up, inserted, or its lookup count changes. The read path
 * takes no fs-wide lock: an open file holds what reading needs (an fd or a
 * fetch). Open files that are written (ingest, local manifests) have their own
 * mutex.
 */
#ifndef DINDFS_FS_INTERNAL_H
#define DINDFS_FS_INTERNAL_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "fetch.h"
#include "fs.h"
#include "hash.h"
#include "index.h"
#include "opcount.h"
#include "registry.h"
#include "store.h"

enum fs_kind {
	FS_ROOT,
	FS_BLOBS_DIR,	     /* blobs/ */
	FS_BLOBS_SHA256_DIR, /* blobs/sha256/ */
	FS_REGISTRY_DIR,     /* registry/ */
	FS_REPO_DIR,	     /* registry/<host>[/<repo components>] */
	FS_MANIFESTS_DIR,    /* registry/<host>/<repo>/manifests/ */
	FS_REPO_BLOBS_DIR,   /* registry/<host>/<repo>/blobs/ */
	FS_INGEST_DIR,	     /* ingest/ */
	FS_META_DIR,	     /* .dindfs/ */
	FS_BLOB,	     /* any blob or manifest, by digest: immutable */
	FS_LOCAL_TAG,	     /* registry/local/<repo>/manifests/<tag>: writable */
	FS_INGEST_FILE,	     /* ingest/sha256:<hex> being written */
	FS_STATS,	     /* .dindfs/stats */
	FS_WHOAMI,	     /* .dindfs/whoami: made for each opener */
	FS_REGISTRIES,	     /* .dindfs/registries */
	FS_ALIAS,	     /* registry/<Docker Hub alias>: a symlink to registry (docker.io) */
};

/*
 * Inode numbers are the addresses of inode structs of several families: the
 * cache namespace's struct fs_node below, the workspace's (ws_internal.h).
 * Each starts with one of these tags, so ops.c tells from the number alone
 * which family an operation is about (FUSE_ROOT_ID is the cache's root).
 */
#define FS_FAMILY_CACHE	    0x68636164u /* "dach" */
#define FS_FAMILY_WORKSPACE 0x73776164u /* "daws" */
#define FS_FAMILY_LAYERS    0x6c796164u /* "dayl": layers.c */

struct fs;

/*
 * A family of inodes: its operations, and its place in the mount's root.
 * ops.c finds the family of an inode once and calls its table; an
 * operation on two inodes of different families is EXDEV. Each operation
 * of ops has the arguments of libfuse's and sends exactly one reply; one a
 * family leaves NULL answers EACCES (never ENOSYS: the kernel would take
 * that as "never again" for the whole mount). To add a family: a tag, a
 * struct fs_family, a slot in enum fs_family_slot, filled in fs_run().
 */
struct fs_family {
	uint32_t tag;	       /* FS_FAMILY_*: the first field of each of its inodes */
	const char *root_name; /* its directory in the mount's root; NULL: it is the root */
	/* The root's root_name entry: reply with the family's top inode. */
	void (*lookup_root)(struct fs *fs, fuse_req_t req);
	/* Count n fewer lookups on ino; no reply (ops.c replies once for a batch). */
	void (*forget)(struct fs *fs, fuse_ino_t ino, uint64_t n);
	const struct fuse_lowlevel_ops *ops; /* every operation but init and the forgets */
	/*
	 * Whether the kernel may keep the listing of directory ino now (NULL:
	 * never). Without opendir (fs->no_opendir) the kernel keeps every
	 * listing it read until told otherwise; a family that says yes here
	 * tells it when one changes, the others are dropped at each readdir
	 * (ops.c). Their readdir gets no handle (fi->fh 0) then, nor a
	 * releasedir.
	 */
	bool (*keeps_listing)(struct fs *fs, fuse_ino_t ino);
};

/* Where fs->families holds each family; an unused slot is NULL. */
enum fs_family_slot {
	FS_SLOT_CACHE,	   /* always there: fs_cache_family (cache_ops.c) */
	FS_SLOT_WORKSPACE, /* with --workspace: fs_ws_family (ws_ops.c) */
	FS_SLOT_LAYERS,	   /* the read-only layers/ tree: fs_layers_family (layers.c) */
	FS_SLOTS,
};

/*
 * The kernel's passthrough id that an inode's open files share
 * (passthrough.c). Guarded by the lock of the inode table it is in.
 */
struct fs_backing {
	int id;		/* > 0: the id; 0: none; -1: refused for the opens now counted */
	unsigned opens; /* opens counted by fs_backing_get() and not yet put */
};

/* Longest path below registry/ that a node keeps: host, repository, tag. */
#define FS_NAME_MAX INDEX_NAME_MAX

struct fs_node {
	uint32_t family;  /* FS_FAMILY_CACHE: first, as in the workspace's inodes */
	uint64_t nlookup; /* guarded by nodes_lock */
	enum fs_kind kind;
	bool permanent;		  /* a static directory: never freed */
	int8_t level;		  /* whose budget it counts in (fs_level), or -1 */
	uint32_t cost;		  /* bytes it counts there */
	char *key;		  /* identity in the table */
	struct fs_hash_link link; /* in fs->nodes */

	/* FS_BLOB, FS_INGEST_FILE */
	struct digest digest;
	int64_t size; /* -1 until known; guarded by nodes_lock (fs_node_size()) */
	/*
	 * Where a blob can be fetched from when it is not in the store:
	 * "registry\0repository\0", or NULL. Guarded by nodes_lock.
	 */
	char *origin;
	struct fs_backing backing; /* FS_BLOB; guarded by nodes_lock */

	/*
	 * FS_REPO_DIR, FS_MANIFESTS_DIR, FS_REPO_BLOBS_DIR, FS_LOCAL_TAG,
	 * FS_ALIAS (registry is the target). Last,
	 * because blob and ingest nodes (most of the table) are allocated
	 * without them: see FS_NODE_NAMELESS_SIZE.
	 */
	char registry[FS_NAME_MAX + 1];
	char repository[FS_NAME_MAX + 1]; /* "" for a host directory */
	char tag[FS_NAME_MAX + 1];	  /* FS_LOCAL_TAG */
};

/* The size of a node that has no names (FS_BLOB, FS_INGEST_FILE). */
#define FS_NODE_NAMELESS_SIZE offsetof(struct fs_node, registry)

enum fs_file_kind {
	FS_FILE_FD,	/* a committed blob: splice from its file */
	FS_FILE_FETCH,	/* a blob downloading: wait for bytes */
	FS_FILE_BUFFER, /* generated content (stats, whoami), or a local manifest being written */
	FS_FILE_INGEST, /* a store writer */
	FS_FILE_DIR,	/* a directory listing taken at opendir */
};

struct fs_dirent {
	char *name;
	enum fs_kind kind;
};

struct fs_file {
	enum fs_file_kind kind;
	struct fs_node *node;
	int fd;
	uint64_t file_size; /* FD: the blob's size, read once at open */
	bool backed;	    /* FD: counted in node->backing (passthrough.c) */
	struct fetch *fetch;

	pthread_mutex_t lock; /* BUFFER being written, INGEST */
	char *data;
	size_t len, cap;
	bool writable;
	bool done; /* what was written is committed */
	struct store_writer *writer;
	int level;	       /* a writer's: whose budgets it counts in */
	uint64_t ingest_bytes; /* INGEST: counted in its level's tmp share */

	struct fs_dirent *entries;
	size_t n_entries;
};

struct fs_stats {
	atomic_uint_fast64_t bytes_served;
	atomic_uint_fast64_t blob_hits;
	atomic_uint_fast64_t blob_misses;
	atomic_uint_fast64_t passthrough_opens; /* opens the kernel serves itself */
	struct fs_opcount requests;		/* every request, by kind (ops.c) */
	struct fs_opcount
		family_requests[FS_SLOTS]; /* the same, by FS_SLOT_* of the family served */
};

struct fs_ws;

/* What the connection took at init (ops.c), as .dindfs/stats shows it. */
struct fs_negotiated {
	bool killpriv_v2;     /* the daemon clears set-id bits and capabilities itself */
	bool parallel_dirops; /* lookups and readdirs of one directory run at once */
	unsigned max_write;   /* bytes of data one WRITE carries at most */
};

/*
 * Levels: the caller's pid-namespace depth below the daemon (whoami.c).
 * Depths from FS_LEVEL_DEEP down share one budget; callers the daemon
 * cannot place (outside its pid namespace, or gone) share FS_LEVEL_UNKNOWN.
 */
#define FS_LEVEL_DEEP	 7
#define FS_LEVEL_UNKNOWN 8
#define FS_LEVELS	 9

struct fs_level {
	atomic_int writers;		  /* open ingest and local tag writers */
	atomic_int_fast64_t buffer_bytes; /* local tag writers' buffers */
	atomic_int_fast64_t tmp_bytes;	  /* its ingests' bytes in tmp/ */
	atomic_int_fast64_t node_bytes;	  /* nodes it made that the table holds */
};

struct fs {
	const struct fs_config *cfg;
	const struct fs_family *families[FS_SLOTS]; /* set before the session starts */
	struct fs_ws *ws;			    /* the workspace, or NULL */
	struct fs_layers *layers;		    /* layers/ and its unpacker (layers.h) */
	struct store *store;
	struct registry *registry;
	struct fetcher *fetcher;
	struct fuse_session *session;
	struct fs_stats stats;
	atomic_bool passthrough; /* the kernel took FUSE_CAP_PASSTHROUGH (passthrough.c) */
	bool no_opendir;	 /* opendir is answered ENOSYS: none comes (ops.c, at init) */
	struct fs_negotiated negotiated; /* set at init (ops.c), for .dindfs/stats */

	pthread_mutex_t nodes_lock;
	struct fs_hash nodes; /* the inode table (node.c) */
	struct fs_node root;

	pthread_mutex_t log_lock;
	char last_log[512]; /* the last upstream error logged, to log it once */

	/* GC runs on a thread of its own, woken by gc_wanted (gc_thread.c) */
	pthread_t gc_thread;
	bool gc_started;
	pthread_mutex_t gc_lock; /* guards gc_wanted, gc_stop */
	pthread_cond_t gc_wake;
	bool gc_wanted, gc_stop;

	struct fs_limits limits; /* cfg's, with the defaults filled in */
	struct fs_level levels[FS_LEVELS];
	struct fs_upstream *upstream;  /* the threads upstream work runs on */
	struct resolve_absent *absent; /* what upstream said is not there */
};

static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/*
 * The replies that leave the kernel holding something: a lookup count
 * (entry, create) or an open file. Every path sends them through these.
 * False when the reply did not reach the kernel (the caller was
 * interrupted): then it holds nothing, and the caller forgets the count,
 * frees the file or the listing, as if the request had failed.
 */
static inline bool fs_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	return fuse_reply_entry(req, e) == 0;
}

static inline bool fs_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
				   const struct fuse_file_info *fi)
{
	return fuse_reply_create(req, e, fi) == 0;
}

static inline bool fs_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	return fuse_reply_open(req, fi) == 0;
}

/*
 * A broken invariant that memory safety rests on (a lookup count below
 * zero, an inode of no family): say so on stderr and in the log
 * (fs_log_internal_errors_to()), and abort, in every build.
 */
#define fs_internal_error(...) fs_internal_error_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void fs_internal_error_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Abort with "INTERNAL ERROR: ..." unless cond holds; on in every build, unlike assert(). */
#define fs_check(cond, ...)                                                                        \
	do {                                                                                       \
		if (__builtin_expect(!(cond), 0))                                                  \
			fs_internal_error(__VA_ARGS__);                                            \
	} while (0)

/* Most nodes the table holds; past it, lookups fail with ENFILE. */
#define FS_MAX_NODES (1u << 20)
/* Defaults of struct fs_limits (docs/security.md). */
#define FS_DEFAULT_LEVEL_WRITERS      64
#define FS_DEFAULT_LEVEL_BUFFER_BYTES (32ll << 20)
#define FS_DEFAULT_LEVEL_NODE_BYTES   (32ll << 20)
#define FS_DEFAULT_LEVEL_LOCAL_TAGS   10000

/* gc_thread.c: GC on its own thread, when cfg->max_size is set. */
int fs_gc_start(struct fs *fs);
/* Ask for a GC (after a commit); it returns at once. */
void fs_gc_kick(struct fs *fs);
/* After the fetcher is gone (nothing wakes GC any more), before the store closes. */
void fs_gc_stop(struct fs *fs);

/* limits.c: the defaults for what cfg left at zero. */
void fs_limits_fill(struct fs_limits *limits);

/* node.c: the inode table */
int fs_nodes_init(struct fs *fs);
void fs_nodes_release(struct fs *fs);
struct fs_node *fs_node_of(struct fs *fs, fuse_ino_t ino);
fuse_ino_t fs_node_ino(struct fs *fs, const struct fs_node *node);
/*
 * Find the node with this key, or insert proto under it; either way count
 * one more lookup. *ret points into the table. A node made here counts in
 * the budget of the level of pid (the caller of the request; 0: none)
 * until it is forgotten. -ENFILE when the table or that budget is full.
 */
int fs_node_get(struct fs *fs, pid_t pid, const char *key, const struct fs_node *proto,
		struct fs_node **ret);
void fs_node_forget(struct fs *fs, struct fs_node *node, uint64_t n);
/* A blob's size, -1 while it is not known (a lookup may learn it). */
int64_t fs_node_size(struct fs *fs, const struct fs_node *node);
/* Remember where a blob node can be fetched from. */
void fs_node_set_origin(struct fs *fs, struct fs_node *node, const char *registry,
			const char *repository);
/* Copy the origin out; false when none is known. */
bool fs_node_origin(struct fs *fs, const struct fs_node *node, char *registry, char *repository);

/* upstream.c: the bounded share of threads for upstream work */
#define FS_UPSTREAM_WORKERS  32
#define FS_UPSTREAM_PER_HOST 16

struct fs_upstream;
/* Work that waits for upstream; it sends req's one reply. */
typedef void (*fs_upstream_fn)(struct fs *fs, fuse_req_t req, void *arg);
int fs_upstream_new(struct fs *fs, struct fs_upstream **ret);
/* Stop what runs (each job then replies), wait for the workers. Accepts NULL. */
void fs_upstream_free(struct fs_upstream *u);
/*
 * Run fn(fs, req, arg) on a worker, counted against host's share. -EAGAIN
 * when every worker or host's share is taken: arg stays the caller's, and
 * so does the reply.
 */
int fs_upstream_submit(struct fs_upstream *u, fuse_req_t req, const char *host, fs_upstream_fn fn,
		       void *arg);

/* namespace.c: names to nodes */
/*
 * Resolve name in parent: fills proto (kind and fields), key, and the
 * entry timeout. Returns 0 or -errno.
 */
int fs_lookup_child(struct fs *fs, const struct fs_node *parent, const char *name,
		    struct fs_node *proto, char *key, size_t key_size, double *ret_timeout);
/*
 * Would resolving name in parent ask upstream? False when the index, the
 * store or the record of absent names answers it (the registry asked
 * would be parent->registry).
 */
bool fs_lookup_needs_upstream(struct fs *fs, const struct fs_node *parent, const char *name);
/* The entries of a directory, taken now. */
int fs_list_dir(struct fs *fs, const struct fs_node *dir, struct fs_dirent **ret, size_t *ret_n);
void fs_free_dirents(struct fs_dirent *entries, size_t n);
/* stat of a node. */
int fs_node_stat(struct fs *fs, const struct fs_node *node, struct stat *st);
bool fs_kind_is_dir(enum fs_kind kind);

/* passthrough.c: FUSE passthrough, where libfuse and the kernel have it */
/* At init: ask for passthrough when both sides offer it (and cfg allows). */
void fs_passthrough_init(struct fs *fs, struct fuse_conn_info *conn);
/*
 * An open of the inode that b belongs to (lock guards b), fd its backing
 * file: with passthrough on, set fi->backing_id (keep_cache and direct_io
 * off) when the kernel takes it. Returns whether the open was counted in b:
 * then fs_backing_put() once at its release.
 */
bool fs_backing_get(struct fs *fs, fuse_req_t req, pthread_mutex_t *lock, struct fs_backing *b,
		    int fd, struct fuse_file_info *fi);
/*
 * One counted open fewer: at release (req), or after an open's reply
 * failed (req NULL). The last release closes the id; without req it stays
 * for the next open.
 */
void fs_backing_put(struct fs *fs, fuse_req_t req, pthread_mutex_t *lock, struct fs_backing *b);
/* Whether the open fi answers goes through (fs_backing_get() gave it an id). */
static inline bool fs_passes_through(const struct fuse_file_info *fi)
{
#ifdef FUSE_CAP_PASSTHROUGH
	return fi->backing_id > 0;
#else
	(void)fi;
	return false;
#endif
}

/* stats.c */
int fs_stats_json(struct fs *fs, char **ret, size_t *ret_len);

/* registries.c: the registries the mount serves */
/* Serve the built-in, --registry and config.json names; on failure, why says so. */
int fs_registries_init(struct fs *fs, char *why, size_t why_size);
/* .dindfs/registries: every served name, one a line. */
int fs_registries_text(struct fs *fs, char **ret, size_t *ret_len);
/* registry/<name>: a host directory, an alias, or -ENOENT (logged) if not served. */
int fs_registries_lookup(struct fs *fs, const char *name, struct fs_node *proto, char *key,
			 size_t key_size);

/* whoami.c: what .dindfs/whoami says to the caller pid (as the daemon sees it). */
int fs_whoami_json(pid_t pid, char **ret, size_t *ret_len);
/* The level (0 .. FS_LEVELS - 1) whose budgets a caller pid counts in. */
int fs_level_of(pid_t pid);

/* log.c */
void fs_log(struct fs *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Where fs_internal_error() writes besides stderr: the log fd, or -1. */
void fs_log_internal_errors_to(int fd);
/* Log an upstream failure, once until a different one comes. */
void fs_log_upstream(struct fs *fs, const char *message);

#endif
