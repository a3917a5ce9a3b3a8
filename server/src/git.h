/* git.h — corrald's libgit2 layer: the repository, session branches and worktrees, diffs, commits, merges into the
 * base branch by policy, and discarding a worktree's changes (DESIGN.md §7). No shelling out to git. */
#ifndef HOST_GIT_H
#define HOST_GIT_H

#include "corral/buf.h"
#include "corral/error.h"
#include <limits.h>
#include <stddef.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Outcomes beyond error.h's codes. Proposed for error.h (append-only, with these numbers and wire names); until they
 * are there cr_err_code() calls them "internal", and cr_error_last()'s message always names the problem. */
#define HOST_GIT_EEXISTS CR_EEXISTS   /* a session branch, worktree or directory of that name already exists */
#define HOST_GIT_ECONFLICT CR_ECONFLICT /* the merge conflicts; the message lists the paths */
#define HOST_GIT_ENOTFF CR_ENOTFF     /* the base moved on, a fast-forward is impossible */
#define HOST_GIT_EDIRTY CR_EDIRTY     /* the base's checkout has local changes in the paths a merge writes */
#define HOST_GIT_EBADNAME CR_EBADNAME /* a session name git cannot use in a branch or worktree name */

/* A positive "nothing happened" result (not an error): nothing to commit, nothing to merge. */
#define HOST_GIT_NOTHING 1

#define HOST_GIT_NAME_MAX 64    /* bytes of a session name, at most */
#define HOST_GIT_BRANCH_MAX 256 /* bytes of a branch's short name, at most (with the NUL) */
#define HOST_GIT_OID_HEX 41     /* a commit id in hex, with the NUL */
#define HOST_GIT_BRANCH_PREFIX "corral/"
#define HOST_GIT_EXCLUDED_DIR ".corral" /* never diffed, committed or discarded */

#define HOST_GIT_PATCH_MAX_DEFAULT (1024 * 1024) /* bytes of patch text in a diff, by default */
#define HOST_GIT_FILES_MAX_DEFAULT 2000          /* files listed in a diff, by default */

/* An open repository (its main worktree). Not thread-safe: use one per thread. */
typedef struct st_host_git_repo_t host_git_repo_t;

/* A session's git state: plain data that the caller keeps in session.json and passes back. */
typedef struct st_host_git_session_t {
    char name[HOST_GIT_NAME_MAX + 1];   /* "feature-auth" */
    char branch[HOST_GIT_BRANCH_MAX];   /* "corral/feature-auth" */
    char base[HOST_GIT_BRANCH_MAX];     /* the base branch's short name, "main" */
    char base_commit[HOST_GIT_OID_HEX]; /* what diffs compare against: base's tip at creation, moved by a merge */
    char worktree[PATH_MAX];            /* absolute path of the session's worktree, no trailing slash */
    int from_spare;                     /* host_git_session_create took a spare worktree (not saved) */
} host_git_session_t;

/* What a diff compares the worktree with. */
typedef enum host_git_since_t {
    HOST_GIT_SINCE_BASE = 0, /* session.base_commit: everything the session would bring into base */
    HOST_GIT_SINCE_HEAD = 1, /* the session branch's tip: what host_git_commit would commit */
} host_git_since_t;

/* One changed file. Status: 'A' added (untracked files included), 'M' modified, 'D' deleted, 'R' renamed, 'T' type
 * changed (file <-> symlink). Binary files count no lines. */
typedef struct st_host_git_file_t {
    char *path;     /* the new path (the old one for 'D'); owned by the diff */
    char *old_path; /* 'R': the path it was renamed from; else NULL */
    char status;
    int binary;
    size_t additions, deletions;
} host_git_file_t;

typedef struct st_host_git_diff_t {
    host_git_file_t *files; /* the first HOST_GIT_FILES_MAX_DEFAULT (or files_max) files, by path */
    size_t nfiles;
    size_t total_files;          /* files changed in all, listed or not */
    size_t additions, deletions; /* over all files */
    cr_buf_t patch;              /* the unified patch (as `git diff` prints it), NUL-terminated */
    int patch_truncated;         /* the patch was cut at the end of a line to stay under the cap */
    int files_truncated;         /* more files changed than are listed */
} host_git_diff_t;

typedef enum host_git_policy_t {
    HOST_GIT_MERGE_NONE = 0,
    HOST_GIT_MERGE_FF = 1,     /* fast-forward base to the session branch; HOST_GIT_ENOTFF when base moved on */
    HOST_GIT_MERGE_SQUASH = 2, /* one new commit on base with the session's changes */
    HOST_GIT_MERGE_MERGE = 3,  /* a merge commit with base and the session branch as parents (even if ff is possible) */
} host_git_policy_t;

typedef struct st_host_git_merge_result_t {
    char base_tip[HOST_GIT_OID_HEX]; /* base's tip afterwards (unchanged when nothing was merged) */
    char **conflicts;                /* HOST_GIT_ECONFLICT / HOST_GIT_EDIRTY: the paths (owned; free with _free) */
    size_t nconflicts;
    int checkout_updated; /* base is checked out in a worktree and its files were updated to the new tip */
} host_git_merge_result_t;

/* Author and committer of the commits this module makes ("feature-auth-agent", "feature-auth-agent@corral.example").
 * Neither may contain '<', '>' or a newline. */
typedef struct st_host_git_identity_t {
    const char *name;
    const char *email;
} host_git_identity_t;

/* Opens the repository that contains `path` (the directory itself or any directory inside it, a linked worktree
 * included: it resolves to the main repository). On success *out is owned by the caller (host_git_close). Returns 0,
 * CR_ENOTFOUND ("not a git repository: PATH", "no such directory: PATH", field "repo"), CR_ECONFIG (a bare repository
 * or one whose ownership libgit2 refuses) or -1. */
int host_git_open(host_git_repo_t **out, const char *path);

/* Closes a repository from host_git_open. NULL is fine. */
void host_git_close(host_git_repo_t *repo);

/* The main worktree's absolute path, without a trailing slash. Valid while repo is open. */
const char *host_git_workdir(const host_git_repo_t *repo);

/* Resolves the base branch `base` (a local branch's short name or "refs/heads/..."; NULL: the branch HEAD is on) into
 * its short name (out_branch, HOST_GIT_BRANCH_MAX bytes) and its tip (out_tip, hex; may be NULL). Returns 0,
 * CR_ENOTFOUND ("base branch does not exist: X", "HEAD is detached: ...", "... has no commits yet", field "base") or -1. */
int host_git_resolve_base(char *out_branch, char *out_tip, host_git_repo_t *repo, const char *base);

/* Checks a session name: 1 to HOST_GIT_NAME_MAX bytes of letters, digits, '.', '_' and '-', not starting with '.' or
 * '-', and such that "refs/heads/corral/NAME" is a valid reference. Returns 0 or HOST_GIT_EBADNAME (with a message). */
int host_git_check_name(const char *name);

/* Creates session `name`: the branch corral/NAME at the tip of `base` (NULL: the current branch) and its worktree at
 * `worktree_path` (NULL: "<workdir>.worktrees/<name>"; its parent directories are made), checked out. On success
 * *out describes the session (base_commit = base's tip). Nothing is left behind on failure. Returns 0,
 * HOST_GIT_EBADNAME, CR_ENOTFOUND (the base), HOST_GIT_EEXISTS (the branch, the worktree or the directory exists) or
 * -1, with a message naming the problem. */
int host_git_session_create(host_git_session_t *out, host_git_repo_t *repo, const char *name, const char *base,
                            const char *worktree_path);

/* Spare worktrees (git.c explains them): host_git_session_create takes a ready spare instead of writing every file
 * when one is there (brought up to base's tip first if it holds an older commit, and only if nothing in it changed
 * since it was made). On by default; host_git_set_spares(repo, 0) turns taking them off. */
void host_git_set_spares(host_git_repo_t *repo, int on);

/* Makes sure one spare worktree of base's tip (NULL: the current branch's) is ready in the repository containing
 * repo_path: keeps one that is, brings an older one up to date, else writes a new one; removes any other spare and
 * what a crash left. Slow (it writes the files): run it off the event loop. It opens the repository itself, so any
 * thread may call it, but never two calls for one repository at once. Returns 0, or an error code of host_git_open,
 * CR_ENOTFOUND (the base), CR_EIO or -1, with the message. */
int host_git_spare_make(const char *repo_path, const char *base);

/* Removes the session's worktree (its directory, with any uncommitted work in it, and git's record of it) and, unless
 * keep_branch, the branch corral/NAME. What is already gone is skipped. The directory is renamed into
 * "<workdir>.worktrees/.trash-XXXXXXXX" (deleted at once only when that is on another file system): call
 * host_git_trash_empty later, off the event loop. Returns 0, CR_ENOTFOUND (neither the worktree nor the branch exists)
 * or -1. */
int host_git_session_remove(host_git_repo_t *repo, const host_git_session_t *s, int keep_branch);

/* Deletes what host_git_session_remove put in the trash of the repository whose main worktree is workdir (what
 * host_git_workdir gives). Slow; any thread (it needs no repository handle). Returns 0, or CR_EIO (something could not
 * be deleted). */
int host_git_trash_empty(const char *workdir);

/* Computes the changes of the session's worktree — tracked, and untracked files that are not ignored, but nothing
 * under .corral/ — against `since`, with rename detection. files_max and patch_max cap the file list and the patch
 * text (0: the defaults); over a cap the diff is cut with a flag set, never failed. On success *out is owned by the
 * caller (host_git_diff_free), also when it is empty. Returns 0, CR_ENOTFOUND (the worktree or base commit is gone)
 * or -1. */
int host_git_diff(host_git_diff_t *out, host_git_repo_t *repo, const host_git_session_t *s, host_git_since_t since,
                  size_t files_max, size_t patch_max);

/* Frees a diff's contents; it is empty afterwards. Idempotent. */
void host_git_diff_free(host_git_diff_t *d);

/* Whether host_git_diff would find any change, stopping at the first one. Returns 1 (changes), 0 (none),
 * CR_ENOTFOUND or -1. */
int host_git_has_changes(host_git_repo_t *repo, const host_git_session_t *s, host_git_since_t since);

/* Stages everything in the session's worktree (as host_git_diff sees it: untracked files added, deleted files
 * removed, .corral/ left out) and commits it on corral/NAME with `who` as author and committer. out_id (hex, may be
 * NULL) receives the new commit. Returns 0, HOST_GIT_NOTHING (nothing to commit; nothing is written), CR_ENOTFOUND
 * (the worktree is gone), CR_ECONFIG (the worktree is not on corral/NAME, or a bad identity) or -1. */
int host_git_commit(char *out_id, host_git_repo_t *repo, const host_git_session_t *s, const host_git_identity_t *who,
                    const char *message);

/* Parses "none", "ff", "squash" or "merge" (NULL or "": ff). Returns 0 or CR_ECONFIG. */
int host_git_policy_parse(host_git_policy_t *out, const char *text);

/* The policy's name. */
const char *host_git_policy_name(host_git_policy_t policy);

/* Brings the session branch's commits into base by policy: none leaves base; ff moves base to the session's tip;
 * squash commits the session's changes (three-way, from the merge base) on base as one commit; merge makes a merge
 * commit. squash and merge commits have `who` as author and committer and `message` (NULL: a default). When base is
 * checked out in a worktree (the main one, usually), that worktree's index and files are updated to the new tip as
 * `git merge` would; local changes there in the paths the merge writes refuse the merge. Either everything happens or
 * nothing: on any error base, its index and its files are as they were. On a merge s->base_commit becomes the
 * session's tip, so the next diff shows only what is new. out (may be NULL) must be freed with
 * host_git_merge_result_free. Returns 0 (merged), HOST_GIT_NOTHING (none, or nothing to merge), HOST_GIT_ENOTFF,
 * HOST_GIT_ECONFLICT or HOST_GIT_EDIRTY (out->conflicts lists the paths; so does the message, cut to fit),
 * CR_ENOTFOUND (a branch is gone) or -1. */
int host_git_merge(host_git_merge_result_t *out, host_git_repo_t *repo, host_git_session_t *s, host_git_policy_t policy,
                   const host_git_identity_t *who, const char *message);

/* Frees what a merge result owns. Idempotent. */
void host_git_merge_result_free(host_git_merge_result_t *r);

/* Throws away the session worktree's changes: index and files reset to corral/NAME's tip, untracked files and
 * directories removed (ignored ones and .corral/ are kept). Returns 0, CR_ENOTFOUND (the worktree is gone),
 * CR_ECONFIG (the worktree is not on corral/NAME) or -1. */
int host_git_discard(host_git_repo_t *repo, const host_git_session_t *s);

#endif
