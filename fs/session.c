/*
 * session: fs_run() — open the cache and the workspace, mount, serve on
 * the FUSE loop until unmounted or signalled, and tear it all down:
 * downloads stop and nothing partial is committed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cache_ops.h"
#include "resolve.h"
#include "layers.h"
#include "workspace.h"

#define MAX_THREADS 64

/* ---- the session ------------------------------------------------------------ */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A start-up line: to the waiting `dindfs mount` through fd, or, in the
 * foreground (fd < 0), straight to stderr as the command's one error line.
 */
static void say(int fd, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	if (fd < 0) {
		fd = STDERR_FILENO;
		if (write(fd, "dindfs: ", 8) < 0)
			return;
	}
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0)
		return;
}

static void on_fetch_done(const struct digest *d, int result, const struct registry_error *err,
			  void *ctx)
{
	struct fs *fs = ctx;

	if (result == 0) {
		fs_gc_kick(fs);
	} else if (result != -ECANCELED) {
		fs_log(fs, "fetch of sha256:%s failed: %s", d->hex, err->message);
	}
}

static int open_cache(struct fs *fs, int ready_fd)
{
	const struct fs_config *cfg = fs->cfg;
	char why[600];
	/* a level names the hosts: only those the mount serves are contacted */
	struct registry_options opts = {.deadline_s = (long)cfg->upstream_timeout,
					.served_only = true};
	size_t i;
	int r;

	r = store_open(cfg->store_dir, &fs->store);
	if (r < 0) {
		say(ready_fd, "cannot open store '%s': %s", cfg->store_dir, strerror(-r));
		return r;
	}
	store_set_limits(fs->store, (uint64_t)fs->limits.ingest_bytes,
			 (uint64_t)fs->limits.tmp_bytes);
	r = registry_new(&opts, &fs->registry);
	for (i = 0; r == 0 && i < cfg->n_upstreams; i++) {
		r = registry_add_upstream_spec(fs->registry, cfg->upstreams[i]);
		if (r < 0)
			say(ready_fd, "bad --upstream '%s'", cfg->upstreams[i]);
	}
	if (r == 0) {
		r = fs_registries_init(fs, why, sizeof(why));
		if (r < 0)
			say(ready_fd, "%s", why);
	}
	if (r == 0)
		r = fs_gc_start(fs);
	if (r == 0)
		r = fetcher_new(fs->registry, fs->store, on_fetch_done, fs, &fs->fetcher);
	if (r == 0)
		r = fs_nodes_init(fs);
	if (r == 0)
		r = resolve_absent_new(cfg->negative_ttl, &fs->absent);
	if (r == 0)
		r = fs_upstream_new(fs, &fs->upstream);
	return r;
}

static void close_cache(struct fs *fs)
{
	if (fs->registry)
		registry_cancel_all(fs->registry); /* downloads stop; nothing partial is kept */
	fs_upstream_free(fs->upstream);
	fetcher_free(fs->fetcher);
	fs_layers_free(fs->layers); /* no commits come any more: the unpacker stops */
	fs_gc_stop(fs);
	resolve_absent_free(fs->absent);
	fs_nodes_release(fs);
	registry_free(fs->registry);
	store_close(fs->store);
}

/*
 * Every level's writers hold descriptors (fs_limits): take the whole
 * descriptor budget the hard limit allows, so they fit beside the readers'.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int fs_run(const struct fs_config *cfg, int ready_fd)
{
	struct fs fs = {.cfg = cfg, .limits = cfg->limits};
	char *argv[] = {"dindfs", "-o", NULL, NULL};
	char options[128];
	struct fuse_args args;
	struct fuse_loop_config *loop;
	int r;

	fs_limits_fill(&fs.limits);
	raise_fd_limit();
	pthread_mutex_init(&fs.log_lock, NULL);
	pthread_mutex_init(&fs.gc_lock, NULL);
	pthread_cond_init(&fs.gc_wake, NULL);
	/*
	 * default_permissions: the kernel checks every caller against the
	 * modes and owners we report, the workspace's being the backing
	 * files' own (the daemon acts as root behind it).
	 */
	snprintf(options, sizeof(options), "fsname=dindfs,subtype=dindfs,default_permissions%s",
		 cfg->allow_other ? ",allow_other" : "");
	argv[2] = options;
	args = (struct fuse_args)FUSE_ARGS_INIT(3, argv);
	fs_log_internal_errors_to(cfg->log_fd);
	fs.families[FS_SLOT_CACHE] = &fs_cache_family;
	r = open_cache(&fs, ready_fd);
	if (r < 0)
		goto out_cache;
	if (cfg->workspace) {
		r = fs_ws_new(&fs, &fs.ws);
		if (r < 0) {
			say(ready_fd, "cannot open workspace '%s': %s", cfg->workspace,
			    strerror(-r));
			goto out_cache;
		}
		fs.families[FS_SLOT_WORKSPACE] = &fs_ws_family;
		fs_log(&fs, "serving workspace %s", cfg->workspace);
	}
	r = fs_layers_new(&fs, &fs.layers);
	if (r < 0) {
		say(ready_fd, "cannot open the layer trees of store '%s': %s", cfg->store_dir,
		    strerror(-r));
		goto out_cache;
	}
	fs.families[FS_SLOT_LAYERS] = &fs_layers_family;
	fs.session = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	if (!fs.session) {
		say(ready_fd, "cannot start a FUSE session");
		r = -EIO;
		goto out_cache;
	}
	if (fuse_set_signal_handlers(fs.session) < 0) {
		r = -EIO;
		goto out_session;
	}
	if (fuse_session_mount(fs.session, cfg->mountpoint) < 0) {
		say(ready_fd, "cannot mount on '%s' (is /dev/fuse there, and are we root?)",
		    cfg->mountpoint);
		r = -EIO;
		goto out_signals;
	}
	fs_log(&fs, "mounted %s (store %s)", cfg->mountpoint, cfg->store_dir);
	if (ready_fd >= 0)
		say(ready_fd, "ok");
	loop = fuse_loop_cfg_create();
	if (!loop) {
		r = -ENOMEM;
		goto out_unmount;
	}
	fuse_loop_cfg_set_max_threads(loop, MAX_THREADS);
	fuse_loop_cfg_set_clone_fd(loop, 0);
	/*
	 * FUSE over io_uring (kernel 6.14+, libfuse 3.18; not in Debian yet)
	 * would plug in here: requests taken from per-CPU rings instead of
	 * read() on /dev/fuse, saving a context switch per request, which is
	 * most of what a request costs (bench/workspace.sh). libfuse 3.18
	 * turns it on with the session option "io_uring" before this loop.
	 */
	r = fuse_session_loop_mt(fs.session, loop);
	fuse_loop_cfg_destroy(loop);
	fs_upstream_free(fs.upstream); /* its jobs stop and reply */
	fs.upstream = NULL;
	r = r < 0 ? r : 0;
out_unmount:
	fuse_session_unmount(fs.session);
	fs_log(&fs, "unmounted %s", cfg->mountpoint);
out_signals:
	fuse_remove_signal_handlers(fs.session);
out_session:
	fs_ws_stop_watching(fs.ws); /* its thread notifies the session */
	fuse_session_destroy(fs.session);
out_cache:
	fuse_opt_free_args(&args); /* fuse_session_new() may have added to them */
	fs_ws_free(fs.ws);
	close_cache(&fs);
	pthread_mutex_destroy(&fs.log_lock);
	pthread_cond_destroy(&fs.gc_wake);
	pthread_mutex_destroy(&fs.gc_lock);
	return r;
}
