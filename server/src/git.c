/* git.c — corrald's libgit2 layer: session branches and worktrees, diffs, commits, merges by policy, discards. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "git.h"
#include "corral/fs.h"
#include "corral/log.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct st_host_git_repo_t {
    git_repository *repo;
    char workdir[PATH_MAX]; /* no trailing slash */
    int no_spares;          /* host_git_set_spares(repo, 0): every worktree is written in full */
};

#define HEADS "refs/heads/"
#define STOP_AT_FIRST (-4242) /* a diff notify callback's "found one, stop" (no libgit2 code is this) */
#define CONFLICTS_MAX 1000    /* paths kept in a merge result, at most */

/* ---- errors ------------------------------------------------------------------------------------------------------ */

/* Records `code` with "what: <libgit2's message>" and returns code. */
static int host_git__fail(int code, const char *field, const char *what)
{
    const git_error *e = git_error_last();
    return cr_error_set(code, field, "%s: %s", what, e != NULL && e->message != NULL ? e->message : "libgit2 failed");
}

static void oid_hex(char *out, const git_oid *oid)
{
    git_oid_tostr(out, HOST_GIT_OID_HEX, oid);
}

/* Whether a repository-relative path lies in .corral/ (or is it). */
static int is_excluded(const char *path)
{
    size_t n = sizeof(HOST_GIT_EXCLUDED_DIR) - 1;
    return path != NULL && strncmp(path, HOST_GIT_EXCLUDED_DIR, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int delta_is_excluded(const git_diff_delta *d)
{
    return is_excluded(d->new_file.path) && is_excluded(d->old_file.path);
}

/* ---- files ------------------------------------------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* rm -rf, never following symlinks. Returns 0 or CR_EIO. */
static int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : cr_error_set(CR_EIO, NULL, "cannot remove %s: %s", path, strerror(errno));
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return cr_error_set(CR_EIO, NULL, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Copies path into out without trailing slashes (but "/" stays). Returns 0 or CR_EIO when it does not fit. */
static int copy_path(char *out, size_t outlen, const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        --n;
    if (n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %.64s...", path);
    memmove(out, path, n);
    out[n] = '\0';
    return 0;
}

/* ---- the repository ---------------------------------------------------------------------------------------------- */

int host_git_open(host_git_repo_t **out, const char *path)
{
    git_repository *r = NULL, *main_repo = NULL;
    host_git_repo_t *h = NULL;
    struct stat st;
    int rc, e;

    *out = NULL;
    git_libgit2_init();
    if (path == NULL || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = cr_error_set(CR_ENOTFOUND, "repo", "no such directory: %s", path != NULL ? path : "(null)");
        goto done;
    }
    if ((e = git_repository_open_ext(&r, path, 0, NULL)) != 0) {
        if (e == GIT_ENOTFOUND)
            rc = cr_error_set(CR_ENOTFOUND, "repo", "not a git repository: %s", path);
        else if (e == GIT_EOWNER)
            rc = host_git__fail(CR_ECONFIG, "repo", "repository not owned by this user");
        else
            rc = host_git__fail(-1, "repo", path);
        goto done;
    }
    if (git_repository_is_worktree(r)) { /* a linked worktree: work on its main repository */
        if (git_repository_open(&main_repo, git_repository_commondir(r)) != 0) {
            rc = host_git__fail(-1, "repo", path);
            goto done;
        }
        git_repository_free(r);
        r = main_repo;
        main_repo = NULL;
    }
    if (git_repository_is_bare(r) || git_repository_workdir(r) == NULL) {
        rc = cr_error_set(CR_ECONFIG, "repo", "bare repositories are not supported: %s", path);
        goto done;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if ((rc = copy_path(h->workdir, sizeof(h->workdir), git_repository_workdir(r))) < 0)
        goto done;
    h->repo = r;
    r = NULL; /* now owned by h */
    *out = h;
    h = NULL;
    rc = 0;

done:
    git_repository_free(r);
    free(h);
    if (rc != 0)
        git_libgit2_shutdown();
    return rc;
}

void host_git_close(host_git_repo_t *repo)
{
    if (repo == NULL)
        return;
    git_repository_free(repo->repo);
    free(repo);
    git_libgit2_shutdown();
}

const char *host_git_workdir(const host_git_repo_t *repo)
{
    return repo->workdir;
}

/* Looks up the local branch `base` (short or "refs/heads/" name; NULL: the branch HEAD is on) and its tip commit. */
static int lookup_base(git_reference **out_ref, git_commit **out_tip, git_repository *r, const char *base)
{
    git_reference *ref = NULL;
    git_object *obj = NULL;
    int rc, e;

    *out_ref = NULL;
    *out_tip = NULL;
    if (base == NULL || *base == '\0') {
        if (git_repository_head_detached(r) == 1) {
            rc = cr_error_set(CR_ENOTFOUND, "base", "HEAD is detached in %s: name a base branch", git_repository_workdir(r));
            goto done;
        }
        if ((e = git_repository_head(&ref, r)) != 0) {
            if (e == GIT_EUNBORNBRANCH)
                rc = cr_error_set(CR_ENOTFOUND, "base", "the current branch has no commits yet in %s", git_repository_workdir(r));
            else
                rc = host_git__fail(CR_ENOTFOUND, "base", "cannot read HEAD");
            goto done;
        }
    } else {
        const char *shortname = strncmp(base, HEADS, sizeof(HEADS) - 1) == 0 ? base + sizeof(HEADS) - 1 : base;
        if ((e = git_branch_lookup(&ref, r, shortname, GIT_BRANCH_LOCAL)) != 0) {
            if (e == GIT_ENOTFOUND || e == GIT_EINVALIDSPEC)
                rc = cr_error_set(CR_ENOTFOUND, "base", "base branch does not exist: %s", base);
            else
                rc = host_git__fail(-1, "base", base);
            goto done;
        }
    }
    if (strlen(git_reference_shorthand(ref)) >= HOST_GIT_BRANCH_MAX) {
        rc = cr_error_set(CR_ENOTFOUND, "base", "base branch name too long: %.64s...", git_reference_shorthand(ref));
        goto done;
    }
    if (git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) != 0) {
        rc = host_git__fail(CR_ENOTFOUND, "base", "base branch has no commit");
        goto done;
    }
    *out_ref = ref;
    ref = NULL;
    *out_tip = (git_commit *)obj;
    obj = NULL;
    rc = 0;

done:
    git_reference_free(ref);
    git_object_free(obj);
    return rc;
}

int host_git_resolve_base(char *out_branch, char *out_tip, host_git_repo_t *repo, const char *base)
{
    git_reference *ref = NULL;
    git_commit *tip = NULL;
    int rc;

    if ((rc = lookup_base(&ref, &tip, repo->repo, base)) < 0)
        return rc;
    snprintf(out_branch, HOST_GIT_BRANCH_MAX, "%s", git_reference_shorthand(ref));
    if (out_tip != NULL)
        oid_hex(out_tip, git_commit_id(tip));
    git_reference_free(ref);
    git_commit_free(tip);
    return 0;
}

int host_git_check_name(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    /* With only these characters, git's reference rules (git-check-ref-format) come down to: no "..", no leading
     * '.', no trailing '.' or ".lock". Checked here rather than by libgit2, which need not be initialised yet. */
    if (n == 0 || n > HOST_GIT_NAME_MAX || name[0] == '.' || name[0] == '-' || name[n - 1] == '.' || strstr(name, "..") != NULL ||
        (n >= 5 && strcmp(name + n - 5, ".lock") == 0))
        goto bad;
    for (size_t i = 0; i < n; ++i) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            goto bad;
    }
    return 0;

bad:
    return cr_error_set(HOST_GIT_EBADNAME, "name",
                        "invalid session name \"%.*s\": use 1 to %d letters, digits, '.', '_' or '-', not starting with "
                        "'.' or '-', no \"..\", not ending in \".lock\" or '.'",
                        HOST_GIT_NAME_MAX, name != NULL ? name : "", HOST_GIT_NAME_MAX);
}

/* ---- sessions ---------------------------------------------------------------------------------------------------- */

/* "<commondir>/worktrees/<name>": where git keeps a linked worktree's own files. */
static int admin_dir(char *out, size_t outlen, git_repository *r, const char *name)
{
    const char *common = git_repository_commondir(r);
    size_t clen = strlen(common);
    if ((size_t)snprintf(out, outlen, "%s%sworktrees/%s", common, clen > 0 && common[clen - 1] == '/' ? "" : "/", name) >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long under %s", common);
    return 0;
}

/* ---- populating a new worktree ---------------------------------------------------------------------------------
 *
 * A new worktree is written by several threads, each with its own repository handle, straight from the object
 * database: no per-file attribute lookups, no conflict checks (the directory is new and empty). Then the index is
 * read from the tree and given each file's stat data, so the first diff reads no file. When attributes or
 * core.autocrlf could change what git writes (filters, eol), libgit2's own checkout does it instead. */

#define POPULATE_CHUNK 64 /* files a thread takes at a time: neighbours, so threads rarely share a directory */
#define POPULATE_THREADS_MAX 8

typedef struct st_populate_job_t {
    const char *path; /* the index's */
    git_oid id;
    uint32_t mode;
    struct stat st;
    int has_st;
} populate_job_t;

typedef struct st_populate_t {
    const char *commondir, *workdir;
    populate_job_t *jobs;
    size_t njobs;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    char error[200];
} populate_t;

static void populate__fail(populate_t *p, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&p->lock);
    if (!atomic_exchange(&p->failed, 1))
        snprintf(p->error, sizeof(p->error), fmt, a, b);
    pthread_mutex_unlock(&p->lock);
}

/* Makes the parent directories of path (an absolute path). */
static int populate__parents(char *path)
{
    char *slash = strrchr(path, '/');
    int rc;
    if (slash == NULL || slash == path)
        return 0;
    *slash = '\0';
    rc = cr_mkdir_p(path, 0755);
    *slash = '/';
    return rc;
}

static int populate__one(populate_t *p, git_odb *odb, populate_job_t *j, char *path, size_t wlen)
{
    git_odb_object *obj = NULL;
    const char *data;
    size_t size, off = 0;
    int fd = -1, rc = -1, tries;

    if (wlen + strlen(j->path) + 1 >= PATH_MAX) {
        populate__fail(p, "path too long: %.100s%s", j->path, "");
        return -1;
    }
    strcpy(path + wlen, j->path);
    if (j->mode == GIT_FILEMODE_COMMIT) { /* a submodule: an empty directory, as git leaves it */
        if (cr_mkdir_p(path, 0755) < 0)
            goto fail_errno;
        return 0;
    }
    if (git_odb_read(&obj, odb, &j->id) != 0) {
        const git_error *e = git_error_last();
        populate__fail(p, "cannot read the blob of %.100s: %.80s", j->path, e != NULL ? e->message : "");
        return -1;
    }
    data = git_odb_object_data(obj);
    size = git_odb_object_size(obj);
    for (tries = 0; tries < 2; ++tries) {
        if (j->mode == GIT_FILEMODE_LINK) {
            char target[PATH_MAX];
            if (size >= sizeof(target)) {
                errno = ENAMETOOLONG;
                goto fail_errno;
            }
            memcpy(target, data, size);
            target[size] = '\0';
            if (symlink(target, path) == 0) {
                j->has_st = lstat(path, &j->st) == 0;
                rc = 0;
                goto done;
            }
        } else if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                              j->mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0777 : 0666)) >= 0) {
            break;
        }
        if (errno != ENOENT || tries > 0 || populate__parents(path) < 0)
            goto fail_errno;
    }
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail_errno;
        off += (size_t)n;
    }
    j->has_st = fstat(fd, &j->st) == 0;
    rc = 0;
    goto done;

fail_errno:
    populate__fail(p, "cannot write %.120s: %.60s", path, strerror(errno));
done:
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        populate__fail(p, "cannot write %.120s: %.60s", path, strerror(errno));
        rc = -1;
    }
    git_odb_object_free(obj);
    return rc;
}

static void *populate__worker(void *arg)
{
    populate_t *p = arg;
    git_repository *r = NULL;
    git_odb *odb = NULL;
    char path[PATH_MAX];
    size_t wlen = strlen(p->workdir);

    if (git_repository_open_bare(&r, p->commondir) != 0 || git_repository_odb(&odb, r) != 0) {
        const git_error *e = git_error_last();
        populate__fail(p, "cannot open %.100s: %.80s", p->commondir, e != NULL ? e->message : "");
        goto done;
    }
    memcpy(path, p->workdir, wlen);
    path[wlen++] = '/';
    while (!atomic_load(&p->failed)) {
        size_t start = atomic_fetch_add(&p->next, POPULATE_CHUNK);
        if (start >= p->njobs)
            break;
        for (size_t i = start; i < p->njobs && i < start + POPULATE_CHUNK; ++i)
            if (populate__one(p, odb, &p->jobs[i], path, wlen) < 0)
                goto done;
    }

done:
    git_odb_free(odb);
    git_repository_free(r);
    return NULL;
}

static int file_exists(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0;
}

/* Whether a path from a tree is one to write as it is: no empty, ".", ".." or ".git" component (libgit2's checkout
 * refuses those with its own message). */
static int plain_path(const char *path)
{
    for (const char *c = path;;) {
        const char *end = strchr(c, '/');
        size_t n = end != NULL ? (size_t)(end - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.') ||
            (n == 4 && strncasecmp(c, ".git", 4) == 0))
            return 0;
        if (end == NULL)
            return 1;
        c = end + 1;
    }
}

/* Whether checking out this index could write anything but the blobs' bytes: .gitattributes anywhere, an attributes
 * file of the repository, the user or the system, core.autocrlf, symlinks the config says not to make — or a path
 * that is not plain (see plain_path) or leads through a symlink. */
static int needs_filters(git_repository *wr, git_index *index)
{
    git_config *cfg = NULL;
    git_config_entry *entry = NULL;
    const char *common = git_repository_commondir(wr);
    char p[PATH_MAX];
    int v, e, has_links = 0, rc = 1;
    size_t n = git_index_entrycount(index);

    for (size_t i = 0; i < n; ++i) {
        const git_index_entry *ie = git_index_get_byindex(index, i);
        const char *base = strrchr(ie->path, '/');
        if (strcmp(base != NULL ? base + 1 : ie->path, ".gitattributes") == 0 || !plain_path(ie->path))
            return 1;
        if (ie->mode == GIT_FILEMODE_LINK) {
            size_t pos, len = strlen(ie->path);
            if (len + 2 > sizeof(p))
                return 1;
            memcpy(p, ie->path, len);
            memcpy(p + len, "/", 2);
            if (git_index_find_prefix(&pos, index, p) == 0) /* a path through a symlink: let libgit2 refuse it */
                return 1;
            has_links = 1;
        }
    }
    if ((size_t)snprintf(p, sizeof(p), "%s/info/attributes", common) >= sizeof(p) || file_exists(p) ||
        file_exists("/etc/gitattributes"))
        return 1;
    if (getenv("XDG_CONFIG_HOME") != NULL && *getenv("XDG_CONFIG_HOME") != '\0') {
        if ((size_t)snprintf(p, sizeof(p), "%s/git/attributes", getenv("XDG_CONFIG_HOME")) >= sizeof(p) || file_exists(p))
            return 1;
    } else if (getenv("HOME") != NULL) {
        if ((size_t)snprintf(p, sizeof(p), "%s/.config/git/attributes", getenv("HOME")) >= sizeof(p) || file_exists(p))
            return 1;
    }
    if (git_repository_config_snapshot(&cfg, wr) != 0)
        return 1;
    if ((e = git_config_get_bool(&v, cfg, "core.autocrlf")) != GIT_ENOTFOUND && (e != 0 || v)) /* true or input */
        goto done;
    if (git_config_get_entry(&entry, cfg, "core.attributesfile") != GIT_ENOTFOUND)
        goto done;
    if (has_links && git_config_get_bool(&v, cfg, "core.symlinks") == 0 && !v)
        goto done;
    rc = 0;

done:
    git_config_entry_free(entry);
    git_config_free(cfg);
    return rc;
}

/* Writes the files of tip's tree into the new, empty worktree at path and its index. */
static int populate_worktree(const char *path, const char *commondir, const git_commit *tip)
{
    git_repository *wr = NULL;
    git_index *index = NULL;
    git_tree *tree = NULL;
    populate_t p;
    pthread_t threads[POPULATE_THREADS_MAX];
    char wd[PATH_MAX];
    int nthreads = 0, rc;
    long cpus;

    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.lock, NULL);
    if (git_repository_open_ext(&wr, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 || git_repository_index(&index, wr) != 0 ||
        git_commit_tree(&tree, tip) != 0 || git_index_read_tree(index, tree) != 0) {
        rc = host_git__fail(-1, "worktree", "cannot read the session's tree");
        goto done;
    }
    if (needs_filters(wr, index)) {
        git_checkout_options co;
        git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
        co.checkout_strategy = GIT_CHECKOUT_FORCE;
        rc = git_checkout_index(wr, index, &co) == 0 && git_index_write(index) == 0
                 ? 0
                 : host_git__fail(-1, "worktree", "cannot check out the session worktree");
        goto done;
    }

    p.commondir = commondir;
    p.workdir = git_repository_workdir(wr);
    p.njobs = git_index_entrycount(index);
    if ((p.jobs = calloc(p.njobs + 1, sizeof(*p.jobs))) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < p.njobs; ++i) {
        const git_index_entry *e = git_index_get_byindex(index, i);
        p.jobs[i].path = e->path;
        git_oid_cpy(&p.jobs[i].id, &e->id);
        p.jobs[i].mode = e->mode;
    }
    if ((rc = copy_path(wd, sizeof(wd), p.workdir)) < 0) /* libgit2's ends in '/'; the workers add one */
        goto done;
    p.workdir = wd;
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = p.njobs < 4 * POPULATE_CHUNK ? 1 : cpus < 1 ? 1 : cpus > POPULATE_THREADS_MAX ? POPULATE_THREADS_MAX : (int)cpus;
    for (int i = 1; i < nthreads; ++i)
        if (pthread_create(&threads[i], NULL, populate__worker, &p) != 0)
            nthreads = i;
    populate__worker(&p);
    for (int i = 1; i < nthreads; ++i)
        pthread_join(threads[i], NULL);
    if (atomic_load(&p.failed)) {
        rc = cr_error_set(CR_EIO, "worktree", "%s", p.error);
        goto done;
    }

    /* The index learns each file's stat data, so that a diff trusts it instead of reading the file. The entries are
     * written in place (what libgit2's own checkout does inside): git_index_add would copy each one, look its blob up
     * again and re-sort, 10,000 times; only the stat fields change, which nothing in the index is keyed on. */
    for (size_t i = 0; i < p.njobs; ++i) {
        git_index_entry *e = (git_index_entry *)git_index_get_byindex(index, i);
        const struct stat *st = &p.jobs[i].st;
        if (!p.jobs[i].has_st || e == NULL || strcmp(e->path, p.jobs[i].path) != 0)
            continue;
        e->ctime.seconds = (int32_t)st->st_ctim.tv_sec;
        e->ctime.nanoseconds = (uint32_t)st->st_ctim.tv_nsec;
        e->mtime.seconds = (int32_t)st->st_mtim.tv_sec;
        e->mtime.nanoseconds = (uint32_t)st->st_mtim.tv_nsec;
        e->dev = (uint32_t)st->st_dev;
        e->ino = (uint32_t)st->st_ino;
        e->uid = st->st_uid;
        e->gid = st->st_gid;
        e->file_size = (uint32_t)st->st_size;
    }
    if (git_index_write(index) != 0) {
        rc = host_git__fail(-1, "worktree", "cannot write the session's index");
        goto done;
    }
    rc = 0;

done:
    free(p.jobs);
    pthread_mutex_destroy(&p.lock);
    git_tree_free(tree);
    git_index_free(index);
    git_repository_free(wr);
    return rc;
}

static int spare_claim(host_git_repo_t *repo, const git_commit *tip, const char *branch_name, const char *admin,
                       const char *path);

#define TRASH_PREFIX ".trash-" /* removed worktrees' files, until host_git_trash_empty */

int host_git_session_create(host_git_session_t *out, host_git_repo_t *repo, const char *name, const char *base,
                            const char *worktree_path)
{
    git_repository *r = repo->repo;
    git_reference *base_ref = NULL, *branch = NULL;
    git_commit *tip = NULL;
    git_worktree *wt = NULL;
    git_worktree_add_options opts;
    char branch_name[sizeof(HOST_GIT_BRANCH_PREFIX) + HOST_GIT_NAME_MAX], path[PATH_MAX], admin[PATH_MAX], *slash;
    int rc, made_branch = 0, made_dirs = 0;
    struct stat st;

    memset(out, 0, sizeof(*out));
    if ((rc = host_git_check_name(name)) < 0)
        goto done;
    git_worktree_add_options_init(&opts, GIT_WORKTREE_ADD_OPTIONS_VERSION);
    if ((rc = lookup_base(&base_ref, &tip, r, base)) < 0)
        goto done;
    snprintf(branch_name, sizeof(branch_name), HOST_GIT_BRANCH_PREFIX "%s", name);

    /* refuse what exists, before touching anything */
    if (git_branch_lookup(&branch, r, branch_name, GIT_BRANCH_LOCAL) == 0) {
        rc = cr_error_set(HOST_GIT_EEXISTS, "name", "branch %s already exists", branch_name);
        goto done;
    }
    if ((rc = admin_dir(admin, sizeof(admin), r, name)) < 0)
        goto done;
    if (lstat(admin, &st) == 0) {
        rc = cr_error_set(HOST_GIT_EEXISTS, "name", "a worktree named %s already exists (see git worktree list)", name);
        goto done;
    }
    if (worktree_path != NULL && *worktree_path != '\0') {
        if (worktree_path[0] != '/') {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof(cwd)) == NULL ||
                (size_t)snprintf(path, sizeof(path), "%s/%s", cwd, worktree_path) >= sizeof(path)) {
                rc = cr_error_set(CR_EIO, "worktree", "cannot make %s absolute", worktree_path);
                goto done;
            }
            if ((rc = copy_path(path, sizeof(path), path)) < 0)
                goto done;
        } else if ((rc = copy_path(path, sizeof(path), worktree_path)) < 0) {
            goto done;
        }
    } else if ((size_t)snprintf(path, sizeof(path), "%s.worktrees/%s", repo->workdir, name) >= sizeof(path)) {
        rc = cr_error_set(CR_EIO, "worktree", "path too long under %s", repo->workdir);
        goto done;
    }
    if (lstat(path, &st) == 0) {
        rc = cr_error_set(HOST_GIT_EEXISTS, "worktree", "directory already exists: %s", path);
        goto done;
    }
    if ((slash = strrchr(path, '/')) != NULL && slash != path) {
        *slash = '\0';
        rc = cr_mkdir_p(path, 0755);
        *slash = '/';
        if (rc < 0)
            goto done;
    }

    if (spare_claim(repo, tip, branch_name, admin, path) == 0) {
        out->from_spare = 1;
        goto made;
    }
    if (git_branch_create(&branch, r, branch_name, tip, 0) != 0) {
        rc = host_git__fail(-1, "name", "cannot create the session branch");
        goto done;
    }
    made_branch = 1;
    made_dirs = 1;
    opts.ref = branch;
    /* git_worktree_add writes the worktree's git files and HEAD; its own checkout (one file at a time, every file's
     * attributes looked up) is replaced by populate_worktree, so it only dry-runs here. */
    opts.checkout_options.checkout_strategy = GIT_CHECKOUT_DRY_RUN | GIT_CHECKOUT_DONT_WRITE_INDEX;
    if (git_worktree_add(&wt, r, name, path, &opts) != 0) {
        rc = host_git__fail(-1, "worktree", "cannot create the session worktree");
        goto done;
    }
    if ((rc = populate_worktree(path, git_repository_commondir(r), tip)) < 0)
        goto done;

made:
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->branch, sizeof(out->branch), "%s", branch_name);
    snprintf(out->base, sizeof(out->base), "%s", git_reference_shorthand(base_ref));
    oid_hex(out->base_commit, git_commit_id(tip));
    if (realpath(path, out->worktree) == NULL)
        snprintf(out->worktree, sizeof(out->worktree), "%s", path);
    rc = 0;

done:
    if (rc < 0) {
        /* leave nothing behind: this call made the admin dir, the directory and the branch, none existed before */
        cr_error_t saved = *cr_error_last();
        if (made_dirs) {
            rm_rf(admin);
            rm_rf(path);
        }
        if (made_branch && branch != NULL)
            git_reference_delete(branch);
        cr_error_set(saved.code, saved.field, "%s", saved.message);
        memset(out, 0, sizeof(*out));
    }
    git_worktree_free(wt);
    git_reference_free(branch);
    git_reference_free(base_ref);
    git_commit_free(tip);
    return rc;
}

/* Whether dir holds a ".git" file (not a directory): a linked worktree's top. */
static int has_gitlink(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    return (size_t)snprintf(p, sizeof(p), "%s/.git", dir) < sizeof(p) && lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Moves a worktree's directory out of the way: to "<workdir>.worktrees/.trash-XXXXXXXX", which host_git_trash_empty
 * deletes later (on a thread of the caller's choosing: deleting 10,000 files takes 150 ms, a node_modules seconds).
 * Returns 1 when it moved, 0 when it could not (another file system): the caller deletes it then. */
/* A new name beside the sessions' worktrees: "<workdir>.worktrees/<prefix>XXXXXXXX", the 8 random hex digits also in
 * id. Returns 0 or CR_EIO. */
static int worktrees_new_name(char *out, size_t outlen, char id[9], const char *workdir, const char *prefix)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return cr_error_set(CR_EIO, NULL, "no random bytes: %s", strerror(errno));
    snprintf(id, 9, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    if ((size_t)snprintf(out, outlen, "%s.worktrees/%s%s", workdir, prefix, id) >= outlen)
        return cr_error_set(CR_EIO, "worktree", "path too long under %s", workdir);
    return 0;
}

static int trash(host_git_repo_t *repo, const char *dir)
{
    char to[PATH_MAX], id[9];
    return worktrees_new_name(to, sizeof(to), id, repo->workdir, TRASH_PREFIX) == 0 && rename(dir, to) == 0;
}

int host_git_trash_empty(const char *workdir)
{
    char dir[PATH_MAX], p[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int rc = 0;

    if ((size_t)snprintf(dir, sizeof(dir), "%s.worktrees", workdir) < sizeof(dir) && (d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, TRASH_PREFIX, sizeof(TRASH_PREFIX) - 1) == 0 &&
                cr_path_join(p, sizeof(p), dir, de->d_name) == 0 && rm_rf(p) < 0 && rc == 0)
                rc = CR_EIO;
        closedir(d);
    }
    return rc;
}

int host_git_session_remove(host_git_repo_t *repo, const host_git_session_t *s, int keep_branch)
{
    git_repository *r = repo->repo;
    git_worktree *wt = NULL;
    git_reference *branch = NULL;
    git_worktree_prune_options popts;
    char branch_name[sizeof(HOST_GIT_BRANCH_PREFIX) + HOST_GIT_NAME_MAX], admin[PATH_MAX];
    int rc, found = 0, moved = 0;

    if ((rc = host_git_check_name(s->name)) < 0)
        goto done;
    /* the files go to the trash first (a rename), so that git's prune below has only its own record to delete */
    if (s->worktree[0] != '\0' && has_gitlink(s->worktree) && (moved = trash(repo, s->worktree)))
        found = 1;
    if (git_worktree_lookup(&wt, r, s->name) == 0) {
        git_worktree_prune_options_init(&popts, GIT_WORKTREE_PRUNE_OPTIONS_VERSION);
        popts.flags = GIT_WORKTREE_PRUNE_VALID | GIT_WORKTREE_PRUNE_LOCKED | (moved ? 0 : GIT_WORKTREE_PRUNE_WORKING_TREE);
        if (git_worktree_prune(wt, &popts) != 0) {
            rc = host_git__fail(-1, "worktree", "cannot remove the session worktree");
            goto done;
        }
        found = 1;
    } else {
        /* git's record is broken or gone: remove what is left of it */
        if ((rc = admin_dir(admin, sizeof(admin), r, s->name)) < 0)
            goto done;
        if (access(admin, F_OK) == 0) {
            if ((rc = rm_rf(admin)) < 0)
                goto done;
            found = 1;
        }
    }
    if (s->worktree[0] != '\0' && has_gitlink(s->worktree)) { /* only ever a worktree's directory */
        if ((rc = rm_rf(s->worktree)) < 0)
            goto done;
        found = 1;
    }
    if (!keep_branch) {
        snprintf(branch_name, sizeof(branch_name), HOST_GIT_BRANCH_PREFIX "%s", s->name);
        if (git_branch_lookup(&branch, r, branch_name, GIT_BRANCH_LOCAL) == 0) {
            /* git_reference_delete, not git_branch_delete: corral never sets branch.* config, and libgit2 1.5's
             * config section removal leaks pcre2 match data */
            if (git_reference_delete(branch) != 0) {
                rc = host_git__fail(-1, "name", "cannot delete the session branch");
                goto done;
            }
            found = 1;
        }
    }
    rc = found ? 0 : cr_error_set(CR_ENOTFOUND, "name", "no session worktree or branch named %s", s->name);

done:
    git_worktree_free(wt);
    git_reference_free(branch);
    return rc;
}

/* Opens the session's worktree as a repository, checks it belongs to repo and, when check_head, that it is on
 * corral/NAME. .corral/ is ignored in it from then on. */
static int open_worktree(git_repository **out, host_git_repo_t *repo, const host_git_session_t *s, int check_head)
{
    git_repository *wt = NULL;
    git_reference *head = NULL;
    char want[sizeof(HEADS) + sizeof(HOST_GIT_BRANCH_PREFIX) + HOST_GIT_NAME_MAX];
    char *c1 = NULL, *c2 = NULL;
    int rc;

    *out = NULL;
    if ((rc = host_git_check_name(s->name)) < 0)
        goto done;
    if (s->worktree[0] == '\0' || !has_gitlink(s->worktree) ||
        git_repository_open_ext(&wt, s->worktree, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        rc = cr_error_set(CR_ENOTFOUND, "worktree", "session worktree is missing: %s", s->worktree);
        goto done;
    }
    c1 = realpath(git_repository_commondir(wt), NULL);
    c2 = realpath(git_repository_commondir(repo->repo), NULL);
    if (c1 == NULL || c2 == NULL || strcmp(c1, c2) != 0) {
        rc = cr_error_set(CR_ECONFIG, "worktree", "%s is not a worktree of %s", s->worktree, repo->workdir);
        goto done;
    }
    if (check_head) {
        snprintf(want, sizeof(want), HEADS HOST_GIT_BRANCH_PREFIX "%s", s->name);
        if (git_reference_lookup(&head, wt, "HEAD") != 0) {
            rc = host_git__fail(-1, "worktree", "cannot read the session worktree's HEAD");
            goto done;
        }
        if (git_reference_type(head) != GIT_REFERENCE_SYMBOLIC || strcmp(git_reference_symbolic_target(head), want) != 0) {
            rc =
                cr_error_set(CR_ECONFIG, "worktree", "session worktree %s is not on branch %s%s (HEAD is %s)", s->worktree,
                             HOST_GIT_BRANCH_PREFIX, s->name,
                             git_reference_type(head) == GIT_REFERENCE_SYMBOLIC ? git_reference_symbolic_target(head) : "detached");
            goto done;
        }
    }
    if (git_ignore_add_rule(wt, "/" HOST_GIT_EXCLUDED_DIR "/\n") != 0) {
        rc = host_git__fail(-1, "worktree", "cannot exclude " HOST_GIT_EXCLUDED_DIR);
        goto done;
    }
    *out = wt;
    wt = NULL;
    rc = 0;

done:
    free(c1);
    free(c2);
    git_reference_free(head);
    git_repository_free(wt);
    return rc;
}

/* The session branch's tip commit. */
static int session_tip(git_commit **out, git_repository *r, const char *name)
{
    char refname[sizeof(HEADS) + sizeof(HOST_GIT_BRANCH_PREFIX) + HOST_GIT_NAME_MAX];
    git_oid oid;

    *out = NULL;
    snprintf(refname, sizeof(refname), HEADS HOST_GIT_BRANCH_PREFIX "%s", name);
    if (git_reference_name_to_id(&oid, r, refname) != 0)
        return cr_error_set(CR_ENOTFOUND, "name", "session branch %s%s does not exist", HOST_GIT_BRANCH_PREFIX, name);
    if (git_commit_lookup(out, r, &oid) != 0)
        return host_git__fail(-1, "name", "cannot read the session branch's commit");
    return 0;
}

/* The tree a diff of the session compares with. */
static int since_tree(git_tree **out, git_repository *wt, const host_git_session_t *s, host_git_since_t since)
{
    git_commit *c = NULL;
    git_oid oid;
    int rc;

    *out = NULL;
    if (since == HOST_GIT_SINCE_HEAD) {
        if ((rc = session_tip(&c, wt, s->name)) < 0)
            return rc;
    } else if (git_oid_fromstrn(&oid, s->base_commit, strnlen(s->base_commit, HOST_GIT_OID_HEX)) != 0 ||
               git_commit_lookup(&c, wt, &oid) != 0) {
        return cr_error_set(CR_ENOTFOUND, "base_commit", "base commit not found: %.40s", s->base_commit);
    }
    rc = git_commit_tree(out, c) == 0 ? 0 : host_git__fail(-1, NULL, "cannot read a commit's tree");
    git_commit_free(c);
    return rc;
}

static int skip_excluded(const git_diff *diff, const git_diff_delta *delta, const char *spec, void *payload)
{
    (void)diff, (void)spec, (void)payload;
    return delta_is_excluded(delta) ? 1 : 0;
}

static int stop_at_first(const git_diff *diff, const git_diff_delta *delta, const char *spec, void *payload)
{
    (void)diff, (void)spec, (void)payload;
    return delta_is_excluded(delta) ? 1 : STOP_AT_FIRST;
}

static void diff_options(git_diff_options *o, git_diff_notify_cb cb)
{
    git_diff_options_init(o, GIT_DIFF_OPTIONS_VERSION);
    o->flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT |
               GIT_DIFF_INCLUDE_TYPECHANGE | GIT_DIFF_IGNORE_SUBMODULES;
    o->notify_cb = cb;
}

/* Appends as much of text as fits under patch_max, cut after a line. Returns 1 when it was cut. */
static int append_capped(cr_buf_t *b, const char *text, size_t len, size_t patch_max, int *err)
{
    size_t room = b->len + 1 < patch_max ? patch_max - b->len - 1 : 0;
    int cut = 0;
    if (len > room) {
        size_t n = room;
        while (n > 0 && text[n - 1] != '\n')
            --n;
        len = n;
        cut = 1;
    }
    if (len > 0 && (*err = cr_buf_append(b, text, len)) < 0)
        return cut;
    return cut;
}

static char status_letter(git_delta_t st)
{
    switch (st) {
    case GIT_DELTA_ADDED:
    case GIT_DELTA_UNTRACKED:
    case GIT_DELTA_COPIED: return 'A';
    case GIT_DELTA_DELETED: return 'D';
    case GIT_DELTA_RENAMED: return 'R';
    case GIT_DELTA_TYPECHANGE: return 'T';
    default: return 'M';
    }
}

int host_git_diff(host_git_diff_t *out, host_git_repo_t *repo, const host_git_session_t *s, host_git_since_t since,
                  size_t files_max, size_t patch_max)
{
    git_repository *wt = NULL;
    git_tree *tree = NULL;
    git_diff *diff = NULL;
    git_patch *patch = NULL;
    git_buf text = GIT_BUF_INIT;
    git_diff_options o;
    git_diff_find_options fo;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    if (files_max == 0)
        files_max = HOST_GIT_FILES_MAX_DEFAULT;
    if (patch_max == 0)
        patch_max = HOST_GIT_PATCH_MAX_DEFAULT;
    cr_buf_init(&out->patch, patch_max);
    git_diff_find_options_init(&fo, GIT_DIFF_FIND_OPTIONS_VERSION);

    if ((rc = open_worktree(&wt, repo, s, 0)) < 0 || (rc = since_tree(&tree, wt, s, since)) < 0)
        goto done;
    diff_options(&o, skip_excluded);
    if (git_diff_tree_to_workdir_with_index(&diff, wt, tree, &o) != 0) {
        rc = host_git__fail(-1, NULL, "cannot diff the session worktree");
        goto done;
    }
    fo.flags = GIT_DIFF_FIND_RENAMES | GIT_DIFF_FIND_FOR_UNTRACKED;
    if (git_diff_find_similar(diff, &fo) != 0) {
        rc = host_git__fail(-1, NULL, "cannot find renames");
        goto done;
    }
    n = git_diff_num_deltas(diff);
    if ((out->files = calloc(n < files_max ? n + 1 : files_max, sizeof(*out->files))) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; ++i) {
        const git_diff_delta *d;
        size_t adds = 0, dels = 0;
        int err = 0;

        git_patch_free(patch);
        patch = NULL;
        if (git_patch_from_diff(&patch, diff, i) != 0) {
            rc = host_git__fail(-1, NULL, "cannot make a patch");
            goto done;
        }
        if (patch == NULL) /* unchanged after all */
            continue;
        d = git_patch_get_delta(patch);
        if (delta_is_excluded(d))
            continue;
        if (git_patch_line_stats(NULL, &adds, &dels, patch) != 0) {
            rc = host_git__fail(-1, NULL, "cannot count lines");
            goto done;
        }
        out->total_files++;
        out->additions += adds;
        out->deletions += dels;
        if (out->nfiles < files_max) {
            host_git_file_t *f = &out->files[out->nfiles];
            f->status = status_letter(d->status);
            f->binary = (d->flags & GIT_DIFF_FLAG_BINARY) != 0;
            f->additions = adds;
            f->deletions = dels;
            f->path = strdup(d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path);
            if (d->status == GIT_DELTA_RENAMED)
                f->old_path = strdup(d->old_file.path);
            out->nfiles++;
            if (f->path == NULL || (d->status == GIT_DELTA_RENAMED && f->old_path == NULL)) {
                rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
                goto done;
            }
        } else {
            out->files_truncated = 1;
        }
        if (!out->patch_truncated) {
            if (git_patch_to_buf(&text, patch) != 0) {
                rc = host_git__fail(-1, NULL, "cannot print a patch");
                goto done;
            }
            out->patch_truncated = append_capped(&out->patch, text.ptr, text.size, patch_max, &err);
            git_buf_dispose(&text);
            if (err < 0) {
                rc = cr_error_set(err, NULL, "out of memory for the patch");
                goto done;
            }
        }
    }
    if ((rc = cr_buf_append(&out->patch, "", 1)) < 0) { /* the NUL, which len does not count */
        rc = cr_error_set(rc, NULL, "out of memory for the patch");
        goto done;
    }
    out->patch.len--;
    rc = 0;

done:
    if (rc < 0)
        host_git_diff_free(out);
    git_buf_dispose(&text);
    git_patch_free(patch);
    git_diff_free(diff);
    git_tree_free(tree);
    git_repository_free(wt);
    return rc;
}

void host_git_diff_free(host_git_diff_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nfiles; ++i) {
        free(d->files[i].path);
        free(d->files[i].old_path);
    }
    free(d->files);
    cr_buf_free(&d->patch);
    memset(d, 0, sizeof(*d));
}

int host_git_has_changes(host_git_repo_t *repo, const host_git_session_t *s, host_git_since_t since)
{
    git_repository *wt = NULL;
    git_tree *tree = NULL;
    git_index *index = NULL;
    git_diff *diff = NULL;
    git_diff_options o;
    int rc, e;

    if ((rc = open_worktree(&wt, repo, s, 0)) < 0 || (rc = since_tree(&tree, wt, s, since)) < 0)
        goto done;
    if (git_repository_index(&index, wt) != 0) {
        rc = host_git__fail(-1, NULL, "cannot read the session worktree's index");
        goto done;
    }
    /* The tree against the index reads no file. When they differ, a change there may still be undone in the working
     * tree, so only the full diff can tell; else a change in the working tree is one, and the first one ends it. */
    diff_options(&o, skip_excluded);
    o.flags &= ~(uint32_t)(GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT);
    if (git_diff_tree_to_index(&diff, wt, tree, index, &o) != 0) {
        rc = host_git__fail(-1, NULL, "cannot diff the session worktree");
        goto done;
    }
    if (git_diff_num_deltas(diff) > 0) {
        git_diff_free(diff);
        diff = NULL;
        diff_options(&o, skip_excluded);
        if (git_diff_tree_to_workdir_with_index(&diff, wt, tree, &o) != 0) {
            rc = host_git__fail(-1, NULL, "cannot diff the session worktree");
            goto done;
        }
        rc = git_diff_num_deltas(diff) > 0;
        goto done;
    }
    git_diff_free(diff);
    diff = NULL;
    diff_options(&o, stop_at_first);
    e = git_diff_index_to_workdir(&diff, wt, index, &o);
    if (e == STOP_AT_FIRST)
        rc = 1;
    else if (e == 0)
        rc = git_diff_num_deltas(diff) > 0;
    else
        rc = host_git__fail(-1, NULL, "cannot diff the session worktree");

done:
    git_diff_free(diff);
    git_index_free(index);
    git_tree_free(tree);
    git_repository_free(wt);
    return rc;
}

/* ---- spare worktrees --------------------------------------------------------------------------------------------
 *
 * Writing the files is nearly all a session's creation costs (10,000 files: 200-400 ms on ext4, several times that
 * right after many files were deleted, as ext4 then skips recently freed inodes one by one). So corrald keeps a spare:
 * a linked worktree of the base branch's tip, written ahead of time on another thread, which a session create takes
 * with a few renames and three small files instead of writing 10,000.
 *
 *   <workdir>.worktrees/.spare-XXXXXXXX        the files, and ".git" ("gitdir: <admin>")
 *   <commondir>/worktrees/.spare-XXXXXXXX      git's record (<admin>): gitdir, commondir, HEAD (detached), index
 *   <admin>/corral-spare                       "<commit>\n": the spare is ready, holds that commit, and is free
 *
 * Who works on a spare first renames corral-spare to corral-spare.claim (a session create) or corral-spare.update
 * (host_git_spare_make). A rename is atomic, so one of them wins and the other never touches that spare. A spare is
 * used only when its files and index still match its commit (a status check, about 10 ms for 10,000 files). No session
 * name may start with '.', so no spare name is ever a session's. What a crash leaves (no marker, an old claim or update
 * marker) is removed by the next host_git_spare_make. */

#define SPARE_PREFIX ".spare-"
#define SPARE_READY "corral-spare"
#define SPARE_CLAIM "corral-spare.claim"
#define SPARE_UPDATE "corral-spare.update"
#define SPARE_CLAIM_STALE_S 600 /* a claim marker this old is a crashed claim's */

void host_git_set_spares(host_git_repo_t *repo, int on)
{
    repo->no_spares = !on;
}

/* Writes text to dir/name (replacing it; not synced: a spare lost in a crash is only made again). */
static int put_small(const char *dir, const char *name, const char *text)
{
    return cr_write_atomic(dir, name, text, strlen(text), 0644, 0);
}

/* The spare's worktree directory, from <admin>/gitdir ("<dir>/.git\n"). */
static int spare_workdir(char *out, size_t outlen, const char *admin)
{
    char p[PATH_MAX], *text = NULL;
    size_t n;
    int rc;

    if ((rc = cr_path_join(p, sizeof(p), admin, "gitdir")) < 0 || (rc = cr_read_whole(&text, &n, p, PATH_MAX)) < 0)
        return rc;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    rc = n > 5 && n - 5 < outlen && strcmp(text + n - 5, "/.git") == 0 ? 0 : cr_error_set(CR_EIO, NULL, "bad %s", p);
    if (rc == 0) {
        memcpy(out, text, n - 5);
        out[n - 5] = '\0';
    }
    free(text);
    return rc;
}

/* Removes a spare: its worktree (only if it is one: it holds a .git file) and git's record. */
static void spare_drop(const char *admin)
{
    char wd[PATH_MAX];
    if (spare_workdir(wd, sizeof(wd), admin) == 0 && has_gitlink(wd))
        rm_rf(wd);
    rm_rf(admin);
}

/* Reads the commit a marker names. */
static int spare_commit(git_oid *out, const char *admin, const char *marker)
{
    char p[PATH_MAX], *text = NULL;
    int rc;
    if ((rc = cr_path_join(p, sizeof(p), admin, marker)) < 0 || (rc = cr_read_whole(&text, NULL, p, 100)) < 0)
        return rc;
    text[strcspn(text, "\r\n")] = '\0';
    rc = git_oid_fromstr(out, text) == 0 ? 0 : cr_error_set(CR_EIO, NULL, "bad %s", p);
    free(text);
    return rc;
}

/* Takes a free spare: renames <admin>/corral-spare to <admin>/<as>. Returns 1 with admin set, or 0: none is free. */
static int spare_take(char *admin, size_t adminlen, git_repository *r, const char *as)
{
    char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int got = 0;

    if (admin_dir(dir, sizeof(dir), r, "") < 0 || (d = opendir(dir)) == NULL)
        return 0;
    while (!got && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, SPARE_PREFIX, sizeof(SPARE_PREFIX) - 1) != 0 ||
            (size_t)snprintf(from, sizeof(from), "%s%s/" SPARE_READY, dir, de->d_name) >= sizeof(from) ||
            (size_t)snprintf(to, sizeof(to), "%s%s/%s", dir, de->d_name, as) >= sizeof(to) || rename(from, to) != 0)
            continue;
        snprintf(admin, adminlen, "%s%s", dir, de->d_name);
        got = 1;
    }
    closedir(d);
    return got;
}

/* Gives a taken spare back: <admin>/<as> becomes corral-spare again. */
static void spare_give_back(const char *admin, const char *as)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (cr_path_join(from, sizeof(from), admin, as) == 0 && cr_path_join(to, sizeof(to), admin, SPARE_READY) == 0 &&
        rename(from, to) != 0)
        unlink(from); /* left without a marker: the next host_git_spare_make removes it */
}

/* Brings the spare at wd to tip: only the files that differ are written, and what is not tracked is removed. */
static int spare_update(const char *wd, const git_commit *tip)
{
    git_repository *wr = NULL;
    git_commit *c = NULL; /* tip, as this repository handle's object (checkout wants its own) */
    git_checkout_options co;
    int rc;

    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    if (git_repository_open_ext(&wr, wd, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
        git_commit_lookup(&c, wr, git_commit_id(tip)) != 0 || git_checkout_tree(wr, (const git_object *)c, &co) != 0 ||
        git_repository_set_head_detached(wr, git_commit_id(tip)) != 0)
        rc = host_git__fail(-1, "worktree", "cannot update the spare worktree");
    else
        rc = 0;
    git_commit_free(c);
    git_repository_free(wr);
    return rc;
}

/* Whether the spare at wd is exactly tip: HEAD, index and files (untracked ones count; ignored ones do not). */
static int spare_clean(const char *wd, const git_commit *tip)
{
    git_repository *wr = NULL;
    git_index *index = NULL;
    git_tree *tree = NULL;
    git_diff *diff = NULL;
    git_diff_options o;
    git_oid head;
    int clean = 0, e;

    if (git_repository_open_ext(&wr, wd, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0 ||
        git_reference_name_to_id(&head, wr, "HEAD") != 0 || !git_oid_equal(&head, git_commit_id(tip)) ||
        git_repository_index(&index, wr) != 0 || git_commit_tree(&tree, tip) != 0)
        goto done;
    diff_options(&o, NULL);
    o.flags &= ~(uint32_t)(GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT);
    if (git_diff_tree_to_index(&diff, wr, tree, index, &o) != 0 || git_diff_num_deltas(diff) > 0)
        goto done;
    git_diff_free(diff);
    diff = NULL;
    diff_options(&o, stop_at_first);
    e = git_diff_index_to_workdir(&diff, wr, index, &o);
    clean = e == 0 && git_diff_num_deltas(diff) == 0;

done:
    git_diff_free(diff);
    git_tree_free(tree);
    git_index_free(index);
    git_repository_free(wr);
    return clean;
}

/* Makes a session's worktree out of a spare: path and git's record <admin> (both absent), on the new branch
 * branch_name at tip. Returns 0 (done), or 1: no spare could be used, nothing changed (the caller writes the files). */
static int spare_claim(host_git_repo_t *repo, const git_commit *tip, const char *branch_name, const char *admin, const char *path)
{
    git_repository *r = repo->repo;
    git_reference *branch = NULL;
    git_oid held;
    char sp_admin[PATH_MAX], sp_wd[PATH_MAX], text[PATH_MAX + 64];
    int moved_admin = 0, moved_wd = 0;

    if (repo->no_spares || !spare_take(sp_admin, sizeof(sp_admin), r, SPARE_CLAIM))
        return 1;
    if (spare_commit(&held, sp_admin, SPARE_CLAIM) < 0 || spare_workdir(sp_wd, sizeof(sp_wd), sp_admin) < 0) {
        cr_log(CR_LOG_WARN, "spare worktree %s not used: %s", sp_admin, cr_error_last()->message);
        goto garbage;
    }
    if (!git_oid_equal(&held, git_commit_id(tip)) && spare_update(sp_wd, tip) < 0) {
        cr_log(CR_LOG_WARN, "spare worktree %s not used: %s", sp_wd, cr_error_last()->message);
        goto garbage;
    }
    if (!spare_clean(sp_wd, tip)) {
        cr_log(CR_LOG_WARN, "spare worktree %s was changed on disk: not used", sp_wd);
        goto garbage;
    }
    if (git_branch_create(&branch, r, branch_name, tip, 0) != 0) {
        spare_give_back(sp_admin, SPARE_CLAIM);
        return 1; /* the files are written the long way, which reports the error */
    }
    if (rename(sp_admin, admin) != 0)
        goto undo;
    moved_admin = 1;
    if (rename(sp_wd, path) != 0)
        goto undo;
    moved_wd = 1;
    if ((size_t)snprintf(text, sizeof(text), "gitdir: %s\n", admin) >= sizeof(text) || put_small(path, ".git", text) < 0 ||
        (size_t)snprintf(text, sizeof(text), "%s/.git\n", path) >= sizeof(text) || put_small(admin, "gitdir", text) < 0 ||
        (size_t)snprintf(text, sizeof(text), "ref: " HEADS "%s\n", branch_name) >= sizeof(text) ||
        put_small(admin, "HEAD", text) < 0 || cr_path_join(text, sizeof(text), admin, SPARE_CLAIM) < 0 || unlink(text) != 0)
        goto undo;
    git_reference_free(branch);
    return 0;

undo:
    /* back where it was, and left for host_git_spare_make to remove: its files may be half renamed */
    cr_log(CR_LOG_WARN, "cannot take the spare worktree %s: %s", sp_wd, strerror(errno));
    if (moved_wd && rename(path, sp_wd) != 0)
        rm_rf(path);
    if (moved_admin && rename(admin, sp_admin) != 0)
        rm_rf(admin);
    if ((size_t)snprintf(text, sizeof(text), "gitdir: %s\n", sp_admin) < sizeof(text))
        put_small(sp_wd, ".git", text);
    if ((size_t)snprintf(text, sizeof(text), "%s/.git\n", sp_wd) < sizeof(text))
        put_small(sp_admin, "gitdir", text);
    git_reference_delete(branch);
    git_reference_free(branch);
garbage:
    if (cr_path_join(text, sizeof(text), sp_admin, SPARE_CLAIM) == 0)
        unlink(text);
    return 1;
}

/* Writes a new spare of tip. */
static int spare_new(git_repository *r, const char *workdir, const git_commit *tip)
{
    char id[9], wd[PATH_MAX], admin[PATH_MAX], text[PATH_MAX + 64], hex[HOST_GIT_OID_HEX];
    int rc;

    if ((rc = worktrees_new_name(wd, sizeof(wd), id, workdir, SPARE_PREFIX)) < 0)
        return rc;
    if (admin_dir(admin, sizeof(admin), r, SPARE_PREFIX) < 0 || strlen(admin) + sizeof(id) >= sizeof(admin))
        return cr_error_set(CR_EIO, "worktree", "path too long under %s", workdir);
    strcat(admin, id);
    oid_hex(hex, git_commit_id(tip));
    if ((rc = cr_mkdir_p(admin, 0755)) < 0 || (rc = cr_mkdir_p(wd, 0755)) < 0)
        goto fail;
    snprintf(text, sizeof(text), "%s\n", hex);
    if ((rc = put_small(admin, "HEAD", text)) < 0 || (rc = put_small(admin, "commondir", "../..\n")) < 0)
        goto fail;
    snprintf(text, sizeof(text), "%s/.git\n", wd);
    if ((rc = put_small(admin, "gitdir", text)) < 0)
        goto fail;
    snprintf(text, sizeof(text), "gitdir: %s\n", admin);
    if ((rc = put_small(wd, ".git", text)) < 0 || (rc = populate_worktree(wd, git_repository_commondir(r), tip)) < 0)
        goto fail;
    snprintf(text, sizeof(text), "%s\n", hex);
    if ((rc = put_small(admin, SPARE_READY, text)) < 0)
        goto fail;
    return 0;

fail: {
    cr_error_t saved = *cr_error_last();
    rm_rf(wd);
    rm_rf(admin);
    cr_error_set(saved.code, saved.field, "%s", saved.message);
    return rc;
}
}

int host_git_spare_make(const char *repo_path, const char *base)
{
    host_git_repo_t *repo = NULL;
    git_reference *base_ref = NULL;
    git_commit *tip = NULL;
    char dir[PATH_MAX], admin[PATH_MAX], p[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;
    int rc, ready = 0;

    if ((rc = host_git_open(&repo, repo_path)) < 0)
        return rc;
    if ((rc = lookup_base(&base_ref, &tip, repo->repo, base)) < 0 || (rc = admin_dir(dir, sizeof(dir), repo->repo, "")) < 0)
        goto done;
    /* Keep one ready spare of tip, bringing an older one up to date; remove the others and what crashes left. A ready
     * spare is taken (renamed to the update marker) before anything is done to it, so that no claim is using it. */
    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            char ready_p[PATH_MAX], update_p[PATH_MAX], wd[PATH_MAX], hex[HOST_GIT_OID_HEX + 1];
            git_oid held;
            if (strncmp(de->d_name, SPARE_PREFIX, sizeof(SPARE_PREFIX) - 1) != 0 ||
                (size_t)snprintf(admin, sizeof(admin), "%s%s", dir, de->d_name) >= sizeof(admin) ||
                cr_path_join(p, sizeof(p), admin, SPARE_CLAIM) < 0 || cr_path_join(ready_p, sizeof(ready_p), admin, SPARE_READY) < 0 ||
                cr_path_join(update_p, sizeof(update_p), admin, SPARE_UPDATE) < 0)
                continue;
            if (stat(p, &st) == 0 && time(NULL) - st.st_mtime < SPARE_CLAIM_STALE_S)
                continue; /* being taken by a session create right now */
            if (stat(ready_p, &st) == 0) {
                if (!ready && spare_commit(&held, admin, SPARE_READY) == 0 && git_oid_equal(&held, git_commit_id(tip)) &&
                    spare_workdir(wd, sizeof(wd), admin) == 0 && has_gitlink(wd)) {
                    ready = 1;
                    continue;
                }
                if (rename(ready_p, update_p) != 0)
                    continue; /* a session create took it */
                if (!ready && spare_workdir(wd, sizeof(wd), admin) == 0 && spare_update(wd, tip) == 0 && spare_clean(wd, tip)) {
                    oid_hex(hex, git_commit_id(tip));
                    strcat(hex, "\n");
                    if (put_small(admin, SPARE_READY, hex) == 0 && unlink(update_p) == 0) {
                        ready = 1;
                        continue;
                    }
                }
            }
            spare_drop(admin);
        }
        closedir(d);
    }
    rc = ready ? 0 : spare_new(repo->repo, repo->workdir, tip);

done:
    git_reference_free(base_ref);
    git_commit_free(tip);
    host_git_close(repo);
    return rc;
}

/* ---- commits ----------------------------------------------------------------------------------------------------- */

static int check_identity(const host_git_identity_t *who)
{
    if (who == NULL || who->name == NULL || who->email == NULL || who->name[0] == '\0' || who->email[0] == '\0' ||
        strpbrk(who->name, "<>\n") != NULL || strpbrk(who->email, "<>\n") != NULL)
        return cr_error_set(CR_ECONFIG, "identity", "a commit identity needs a name and an email without '<', '>' or newlines");
    return 0;
}

static int add_filter(const char *path, const char *spec, void *payload)
{
    (void)spec, (void)payload;
    return is_excluded(path) ? 1 : 0;
}

/* Writes a commit of tree with the given parents; updates no reference. */
static int make_commit(git_oid *out, git_repository *r, const host_git_identity_t *who, const char *message, const git_tree *tree,
                       size_t nparents, const git_commit **parents)
{
    git_signature *sig = NULL;
    git_buf msg = GIT_BUF_INIT;
    int rc;

    if ((rc = check_identity(who)) < 0)
        goto done;
    if (git_signature_now(&sig, who->name, who->email) != 0) {
        rc = host_git__fail(CR_ECONFIG, "identity", "bad commit identity");
        goto done;
    }
    if (git_message_prettify(&msg, message, 0, '#') != 0 || msg.size == 0) {
        git_buf_dispose(&msg);
        if (git_message_prettify(&msg, "corral", 0, '#') != 0) {
            rc = host_git__fail(-1, NULL, "cannot format the commit message");
            goto done;
        }
    }
    if (git_commit_create(out, r, NULL, sig, sig, NULL, msg.ptr, tree, nparents, parents) != 0) {
        rc = host_git__fail(-1, NULL, "cannot write the commit");
        goto done;
    }
    rc = 0;

done:
    git_buf_dispose(&msg);
    git_signature_free(sig);
    return rc;
}

int host_git_commit(char *out_id, host_git_repo_t *repo, const host_git_session_t *s, const host_git_identity_t *who,
                    const char *message)
{
    git_repository *wt = NULL;
    git_index *index = NULL;
    git_commit *parent = NULL;
    git_tree *tree = NULL;
    git_reference *ref = NULL;
    char refname[sizeof(HEADS) + sizeof(HOST_GIT_BRANCH_PREFIX) + HOST_GIT_NAME_MAX], dflt[128];
    git_oid tree_id, commit_id;
    int rc;

    if (out_id != NULL)
        out_id[0] = '\0';
    if ((rc = check_identity(who)) < 0 || (rc = open_worktree(&wt, repo, s, 1)) < 0 || (rc = session_tip(&parent, wt, s->name)) < 0)
        goto done;
    if (git_repository_index(&index, wt) != 0 || git_index_add_all(index, NULL, GIT_INDEX_ADD_DEFAULT, add_filter, NULL) != 0 ||
        git_index_write_tree(&tree_id, index) != 0) {
        rc = host_git__fail(-1, NULL, "cannot stage the session's changes");
        goto done;
    }
    if (git_oid_equal(&tree_id, git_commit_tree_id(parent))) {
        rc = HOST_GIT_NOTHING;
        goto done;
    }
    if (git_index_write(index) != 0 || git_tree_lookup(&tree, wt, &tree_id) != 0) {
        rc = host_git__fail(-1, NULL, "cannot write the session worktree's index");
        goto done;
    }
    if (message == NULL || *message == '\0') {
        snprintf(dflt, sizeof(dflt), "Changes of corral session %s", s->name);
        message = dflt;
    }
    if ((rc = make_commit(&commit_id, wt, who, message, tree, 1, (const git_commit **)&parent)) < 0)
        goto done;
    /* only if the branch is still where the commit's parent is */
    snprintf(refname, sizeof(refname), HEADS HOST_GIT_BRANCH_PREFIX "%s", s->name);
    if (git_reference_create_matching(&ref, wt, refname, &commit_id, 1, git_commit_id(parent), "corral: commit") != 0) {
        rc = host_git__fail(-1, NULL, "cannot move the session branch");
        goto done;
    }
    if (out_id != NULL)
        oid_hex(out_id, &commit_id);
    rc = 0;

done:
    git_reference_free(ref);
    git_tree_free(tree);
    git_commit_free(parent);
    git_index_free(index);
    git_repository_free(wt);
    return rc;
}

/* ---- merges ------------------------------------------------------------------------------------------------------ */

int host_git_policy_parse(host_git_policy_t *out, const char *text)
{
    static const char *const names[] = {"none", "ff", "squash", "merge"};
    if (text == NULL || *text == '\0') {
        *out = HOST_GIT_MERGE_FF;
        return 0;
    }
    for (int i = 0; i < 4; ++i) {
        if (strcmp(text, names[i]) == 0) {
            *out = (host_git_policy_t)i;
            return 0;
        }
    }
    return cr_error_set(CR_ECONFIG, "merge", "unknown merge policy \"%.32s\": use none, ff, squash or merge", text);
}

const char *host_git_policy_name(host_git_policy_t policy)
{
    switch (policy) {
    case HOST_GIT_MERGE_NONE: return "none";
    case HOST_GIT_MERGE_FF: return "ff";
    case HOST_GIT_MERGE_SQUASH: return "squash";
    case HOST_GIT_MERGE_MERGE: return "merge";
    }
    return "?";
}

void host_git_merge_result_free(host_git_merge_result_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nconflicts; ++i)
        free(r->conflicts[i]);
    free(r->conflicts);
    r->conflicts = NULL;
    r->nconflicts = 0;
}

static int add_conflict(host_git_merge_result_t *r, const char *path)
{
    char **grown;
    if (r->nconflicts >= CONFLICTS_MAX)
        return 0;
    if ((grown = realloc(r->conflicts, (r->nconflicts + 1) * sizeof(*grown))) == NULL)
        return CR_ENOMEM;
    r->conflicts = grown;
    if ((r->conflicts[r->nconflicts] = strdup(path)) == NULL)
        return CR_ENOMEM;
    r->nconflicts++;
    return 0;
}

/* "a, b, c and 4 more" into out, cut to fit. */
static void list_paths(char *out, size_t outlen, const host_git_merge_result_t *r)
{
    size_t used = 0, i;
    out[0] = '\0';
    for (i = 0; i < r->nconflicts; ++i) {
        size_t need = strlen(r->conflicts[i]) + (i > 0 ? 2 : 0);
        if (used + need + 16 >= outlen)
            break;
        used += snprintf(out + used, outlen - used, "%s%s", i > 0 ? ", " : "", r->conflicts[i]);
    }
    if (i < r->nconflicts)
        snprintf(out + used, outlen - used, "%sand %zu more", i > 0 ? " " : "", r->nconflicts - i);
}

/* Collects the conflicting paths of a merged index into r. */
static int collect_index_conflicts(host_git_merge_result_t *r, git_index *index)
{
    git_index_conflict_iterator *it = NULL;
    const git_index_entry *anc, *ours, *theirs;
    int rc = 0;
    if (git_index_conflict_iterator_new(&it, index) != 0)
        return host_git__fail(-1, NULL, "cannot list the merge's conflicts");
    while (rc == 0 && git_index_conflict_next(&anc, &ours, &theirs, it) == 0)
        rc = add_conflict(r, ours != NULL ? ours->path : theirs != NULL ? theirs->path : anc->path);
    git_index_conflict_iterator_free(it);
    return rc < 0 ? cr_error_set(rc, NULL, "out of memory") : 0;
}

static int checkout_conflict_cb(git_checkout_notify_t why, const char *path, const git_diff_file *baseline,
                                const git_diff_file *target, const git_diff_file *workdir, void *payload)
{
    (void)why, (void)baseline, (void)target, (void)workdir;
    return add_conflict(payload, path) < 0 ? -1 : 0;
}

/* Finds the worktree (the main one or a linked one) whose HEAD is on refname. *out is NULL when none is; else it is
 * either r itself (*owned = 0) or a repository the caller frees (*owned = 1). */
static int find_checkout(git_repository **out, int *owned, git_repository *r, const char *refname)
{
    git_strarray names = {NULL, 0};
    git_reference *head = NULL;
    int rc = 0;

    *out = NULL;
    *owned = 0;
    if (git_reference_lookup(&head, r, "HEAD") == 0 && git_reference_type(head) == GIT_REFERENCE_SYMBOLIC &&
        strcmp(git_reference_symbolic_target(head), refname) == 0) {
        *out = r;
        goto done;
    }
    if (git_worktree_list(&names, r) != 0) {
        rc = host_git__fail(-1, NULL, "cannot list worktrees");
        goto done;
    }
    for (size_t i = 0; i < names.count && *out == NULL; ++i) {
        git_worktree *w = NULL;
        git_repository *wr = NULL;
        git_reference *h = NULL;
        if (git_worktree_lookup(&w, r, names.strings[i]) == 0 && git_worktree_validate(w) == 0 &&
            git_repository_open_from_worktree(&wr, w) == 0 && git_reference_lookup(&h, wr, "HEAD") == 0 &&
            git_reference_type(h) == GIT_REFERENCE_SYMBOLIC && strcmp(git_reference_symbolic_target(h), refname) == 0) {
            *out = wr;
            *owned = 1;
            wr = NULL;
        }
        git_reference_free(h);
        git_repository_free(wr);
        git_worktree_free(w);
    }

done:
    git_strarray_dispose(&names);
    git_reference_free(head);
    return rc;
}

/* Moves base (refname) from old_tip to new_tip, and the files of the worktree where base is checked out with it; all
 * or nothing. */
static int update_base(host_git_merge_result_t *res, git_repository *r, const char *refname, const char *base,
                       const git_commit *old_tip, const git_oid *new_tip, const char *logmsg)
{
    git_repository *co = NULL;
    git_tree *old_tree = NULL;
    git_commit *new_commit = NULL;
    git_tree *new_tree = NULL;
    git_reference *ref = NULL, *back = NULL;
    git_checkout_options o;
    char list[160];
    int rc, owned = 0, e;

    if ((rc = find_checkout(&co, &owned, r, refname)) < 0)
        goto done;
    git_checkout_options_init(&o, GIT_CHECKOUT_OPTIONS_VERSION);
    if (co != NULL) {
        if (git_commit_tree(&old_tree, old_tip) != 0 || git_commit_lookup(&new_commit, co, new_tip) != 0 ||
            git_commit_tree(&new_tree, new_commit) != 0) {
            rc = host_git__fail(-1, NULL, "cannot read the merge's trees");
            goto done;
        }
        /* a dry run first: nothing is written when the checkout's files have changes in the way */
        o.checkout_strategy = GIT_CHECKOUT_SAFE | GIT_CHECKOUT_DRY_RUN;
        o.baseline = old_tree;
        o.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
        o.notify_cb = checkout_conflict_cb;
        o.notify_payload = res;
        if ((e = git_checkout_tree(co, (const git_object *)new_tree, &o)) != 0) {
            if (e == GIT_ECONFLICT || res->nconflicts > 0) {
                list_paths(list, sizeof(list), res);
                rc = cr_error_set(HOST_GIT_EDIRTY, "base",
                                  "%s is checked out at %s with local changes the merge would overwrite: %s", base,
                                  git_repository_workdir(co), list);
            } else {
                rc = host_git__fail(-1, "base", "cannot check the base's worktree");
            }
            goto done;
        }
    }
    if ((e = git_reference_create_matching(&ref, r, refname, new_tip, 1, git_commit_id(old_tip), logmsg)) != 0) {
        rc = e == GIT_EMODIFIED ? cr_error_set(HOST_GIT_ENOTFF, "base", "%s moved while merging: try again", base)
                                : host_git__fail(-1, "base", "cannot move the base branch");
        goto done;
    }
    if (co != NULL) {
        o.checkout_strategy = GIT_CHECKOUT_SAFE;
        o.notify_flags = GIT_CHECKOUT_NOTIFY_NONE;
        o.notify_cb = NULL;
        if (git_checkout_tree(co, (const git_object *)new_tree, &o) != 0) {
            rc = host_git__fail(-1, "base", "cannot update the base's worktree");
            /* put base back where it was; its files were left as they were by the failed checkout or are partly new */
            git_reference_create_matching(&back, r, refname, git_commit_id(old_tip), 1, new_tip, "corral: merge undone");
            goto done;
        }
        res->checkout_updated = 1;
    }
    rc = 0;

done:
    git_reference_free(back);
    git_reference_free(ref);
    git_tree_free(new_tree);
    git_commit_free(new_commit);
    git_tree_free(old_tree);
    if (owned)
        git_repository_free(co);
    return rc;
}

int host_git_merge(host_git_merge_result_t *out, host_git_repo_t *repo, host_git_session_t *s, host_git_policy_t policy,
                   const host_git_identity_t *who, const char *message)
{
    git_repository *r = repo->repo;
    host_git_merge_result_t local;
    host_git_merge_result_t *res = out != NULL ? out : &local;
    git_reference *base_ref = NULL;
    git_commit *base_tip = NULL, *sess_tip = NULL, *anc = NULL;
    git_tree *anc_tree = NULL, *base_tree = NULL, *sess_tree = NULL, *merged_tree = NULL;
    git_index *merged = NULL;
    git_merge_options mo;
    char refname[sizeof(HEADS) + HOST_GIT_BRANCH_MAX], list[160], msgbuf[HOST_GIT_BRANCH_MAX * 2 + 64];
    const char *what = NULL;
    git_oid new_tip, mb, tree_id;
    int rc;

    memset(res, 0, sizeof(*res));
    git_merge_options_init(&mo, GIT_MERGE_OPTIONS_VERSION);
    if ((rc = host_git_check_name(s->name)) < 0)
        goto done;
    if ((rc = lookup_base(&base_ref, &base_tip, r, s->base[0] != '\0' ? s->base : "(none)")) < 0)
        goto done;
    snprintf(refname, sizeof(refname), "%s", git_reference_name(base_ref));
    oid_hex(res->base_tip, git_commit_id(base_tip));
    if ((rc = session_tip(&sess_tip, r, s->name)) < 0)
        goto done;
    if (policy == HOST_GIT_MERGE_NONE) {
        rc = HOST_GIT_NOTHING;
        goto done;
    }
    if (git_oid_equal(git_commit_id(base_tip), git_commit_id(sess_tip)) ||
        git_graph_descendant_of(r, git_commit_id(base_tip), git_commit_id(sess_tip)) == 1) {
        oid_hex(s->base_commit, git_commit_id(sess_tip)); /* already in base */
        rc = HOST_GIT_NOTHING;
        goto done;
    }

    switch (policy) {
    case HOST_GIT_MERGE_FF:
        if (git_graph_descendant_of(r, git_commit_id(sess_tip), git_commit_id(base_tip)) != 1) {
            size_t ahead = 0, behind = 0;
            git_graph_ahead_behind(&ahead, &behind, r, git_commit_id(base_tip), git_commit_id(sess_tip));
            rc = cr_error_set(HOST_GIT_ENOTFF, "base",
                              "cannot fast-forward %s to %s: %s has %zu commit%s the session does not have; use the merge "
                              "policy squash or merge",
                              s->base, s->branch[0] != '\0' ? s->branch : s->name, s->base, ahead, ahead == 1 ? "" : "s");
            goto done;
        }
        git_oid_cpy(&new_tip, git_commit_id(sess_tip));
        what = "corral: fast-forward";
        break;
    case HOST_GIT_MERGE_SQUASH:
    case HOST_GIT_MERGE_MERGE:
        if (git_commit_tree(&base_tree, base_tip) != 0 || git_commit_tree(&sess_tree, sess_tip) != 0) {
            rc = host_git__fail(-1, NULL, "cannot read the trees to merge");
            goto done;
        }
        if (git_merge_base(&mb, r, git_commit_id(base_tip), git_commit_id(sess_tip)) == 0 &&
            (git_commit_lookup(&anc, r, &mb) != 0 || git_commit_tree(&anc_tree, anc) != 0)) {
            rc = host_git__fail(-1, NULL, "cannot read the merge base");
            goto done;
        }
        if (git_merge_trees(&merged, r, anc_tree, base_tree, sess_tree, &mo) != 0) {
            rc = host_git__fail(-1, NULL, "cannot merge");
            goto done;
        }
        if (git_index_has_conflicts(merged)) {
            if ((rc = collect_index_conflicts(res, merged)) < 0)
                goto done;
            list_paths(list, sizeof(list), res);
            rc = cr_error_set(HOST_GIT_ECONFLICT, "base", "merging %s%s into %s conflicts in %zu file%s: %s",
                              HOST_GIT_BRANCH_PREFIX, s->name, s->base, res->nconflicts, res->nconflicts == 1 ? "" : "s", list);
            goto done;
        }
        if (git_index_write_tree_to(&tree_id, merged, r) != 0 || git_tree_lookup(&merged_tree, r, &tree_id) != 0) {
            rc = host_git__fail(-1, NULL, "cannot write the merged tree");
            goto done;
        }
        if (policy == HOST_GIT_MERGE_SQUASH) {
            if (git_oid_equal(&tree_id, git_commit_tree_id(base_tip))) { /* base has all of it already */
                oid_hex(s->base_commit, git_commit_id(sess_tip));
                rc = HOST_GIT_NOTHING;
                goto done;
            }
            if (message == NULL || *message == '\0') {
                snprintf(msgbuf, sizeof(msgbuf), "Squashed corral session %s", s->name);
                message = msgbuf;
            }
            if ((rc = make_commit(&new_tip, r, who, message, merged_tree, 1, (const git_commit **)&base_tip)) < 0)
                goto done;
            what = "corral: squash";
        } else {
            const git_commit *parents[2] = {base_tip, sess_tip};
            if (message == NULL || *message == '\0') {
                snprintf(msgbuf, sizeof(msgbuf), "Merge branch '%s%s' into %s", HOST_GIT_BRANCH_PREFIX, s->name, s->base);
                message = msgbuf;
            }
            if ((rc = make_commit(&new_tip, r, who, message, merged_tree, 2, parents)) < 0)
                goto done;
            what = "corral: merge";
        }
        break;
    default: rc = cr_error_set(CR_ECONFIG, "merge", "unknown merge policy %d", (int)policy); goto done;
    }

    if ((rc = update_base(res, r, refname, s->base, base_tip, &new_tip, what)) < 0)
        goto done;
    oid_hex(res->base_tip, &new_tip);
    oid_hex(s->base_commit, git_commit_id(sess_tip));
    rc = 0;

done:
    if (out == NULL)
        host_git_merge_result_free(&local);
    git_index_free(merged);
    git_tree_free(merged_tree);
    git_tree_free(sess_tree);
    git_tree_free(base_tree);
    git_tree_free(anc_tree);
    git_commit_free(anc);
    git_commit_free(sess_tip);
    git_commit_free(base_tip);
    git_reference_free(base_ref);
    return rc;
}

/* ---- discard ----------------------------------------------------------------------------------------------------- */

int host_git_discard(host_git_repo_t *repo, const host_git_session_t *s)
{
    git_repository *wt = NULL;
    git_commit *tip = NULL;
    git_tree *tree = NULL;
    git_index *index = NULL;
    git_checkout_options o;
    int rc;

    if ((rc = open_worktree(&wt, repo, s, 1)) < 0 || (rc = session_tip(&tip, wt, s->name)) < 0)
        goto done;
    git_checkout_options_init(&o, GIT_CHECKOUT_OPTIONS_VERSION);
    if (git_commit_tree(&tree, tip) != 0 || git_repository_index(&index, wt) != 0) {
        rc = host_git__fail(-1, NULL, "cannot read the session branch");
        goto done;
    }
    /* the index first, so that checkout sees staged changes as changes to undo */
    if (git_index_read_tree(index, tree) != 0 || git_index_write(index) != 0) {
        rc = host_git__fail(-1, NULL, "cannot reset the session worktree's index");
        goto done;
    }
    o.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
    if (git_checkout_tree(wt, (const git_object *)tree, &o) != 0) {
        rc = host_git__fail(-1, NULL, "cannot reset the session worktree");
        goto done;
    }
    rc = 0;

done:
    git_index_free(index);
    git_tree_free(tree);
    git_commit_free(tip);
    git_repository_free(wt);
    return rc;
}
