/* File operations behind the monitor's file routes (/api/read, /api/write,
 * /api/mkdir, /api/delete, /api/rename, /api/move, /api/list-files,
 * /api/exists).
 *
 * Every function acts with the calling thread's credentials: the caller
 * switches the thread's fsuid/fsgid to the sandbox user around the call, so
 * the kernel's permission checks are the boundary.  Paths are absolute (the
 * caller resolves relative ones against the session's cwd and checks them
 * with fsops_check_path first).
 *
 * Errors use the Cloudflare Sandbox SDK codes (docs/sdk-contract.md 3):
 * FILE_NOT_FOUND 404, PERMISSION_DENIED 403, FILE_EXISTS 409,
 * IS_DIRECTORY 400, NOT_DIRECTORY 400, FILE_TOO_LARGE 413, NO_SPACE, ...
 * Every error except fsops_check_path's carries context.path (the path
 * given; for fsops_rename the source), FILE_TOO_LARGE also actualSize and
 * maxSize, as the SDK's error classes read them.
 * Functions return 0, or -1 with *err set, unless noted. */
#ifndef SP_FSOPS_H
#define SP_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

struct sp_error;

/* The longest path a request may name (the SDK's own limit). */
#define FSOPS_PATH_MAX 4096
/* How deep fsops_list descends below the listed directory. */
#define FSOPS_LIST_MAX_DEPTH 64

/* VALIDATION_FAILED (400) unless path is non-empty, at most FSOPS_PATH_MAX
 * bytes, free of NUL bytes and absolute.  len is the real length of the
 * string as decoded from JSON, so an embedded NUL is caught. */
int fsops_check_path(const char *path, size_t len, struct sp_error **err);

/* MIME type for a file, from its extension (case-insensitive) or, for
 * unknown extensions, by sniffing head (the first bytes of the file, up to
 * 8 KiB are looked at): valid UTF-8 without NUL -> text/plain, otherwise
 * application/octet-stream.  *is_text says whether the SDK would send the
 * content as UTF-8 (text/..., JSON, XML, YAML, scripts, SVG...) rather than
 * base64.  head may be cut in the middle of a UTF-8 sequence; a truncated
 * sequence at its end is not held against it.  Returns a static string. */
const char *fsops_mime_type(const char *path, const void *head, size_t head_len,
                            bool *is_text);

struct fs_file {
  char *data;       /* the content, NUL-terminated (not counted in len) */
  size_t len;
  const char *mime; /* static */
  bool is_text;     /* textual MIME type AND the whole content is valid
                       UTF-8; false means: send it base64 */
};

void fs_file_release(struct fs_file *f);

/* Read a whole regular file of at most max_bytes.  Refusals:
 *   missing                -> FILE_NOT_FOUND  "File not found: <p>"
 *   a directory            -> IS_DIRECTORY    (400)
 *   FIFO, device, socket   -> NOT_REGULAR_FILE (400), without blocking or
 *                             opening it: it is refused on stat(); should
 *                             one be swapped in before the open, the open
 *                             is O_NONBLOCK and fstat() refuses it
 *   larger than max_bytes  -> FILE_TOO_LARGE  (413), message with both sizes
 * On success *out owns the data (release with fs_file_release). */
int fsops_read(const char *path, size_t max_bytes, struct fs_file *out,
               struct sp_error **err);

/* Open a regular file for streaming, with fsops_read's refusals except the
 * size limit (the caller has *st and decides).  *fd is blocking and
 * close-on-exec; the caller closes it. */
int fsops_open_read(const char *path, int *fd, struct stat *st,
                    struct sp_error **err);

/* Replace path's content atomically: a temporary file (O_EXCL|O_NOFOLLOW,
 * random name) in the same directory, then rename(2) over the target.  An
 * existing file keeps its permission bits (not setuid/setgid/sticky, not its
 * owner: the new file belongs to the writing user, and hard links to the old
 * file keep the old content); a new one is 0644 less the umask.  A symlink
 * at path is replaced by the file (the link's target is not written).
 * IS_DIRECTORY if path is (or resolves to) a directory or ends in '/'.
 * make_parents creates missing parent directories (0755 less umask), as
 * the SDK's server does; without it a missing parent is FILE_NOT_FOUND, and
 * either way a non-directory on the way is NOT_DIRECTORY. */
int fsops_write(const char *path, const void *data, size_t len,
                bool make_parents, struct sp_error **err);

/* mkdir (0755 less umask).  Without recursive an existing path is
 * FILE_EXISTS (409) "Path already exists: <p>" and a missing parent is
 * FILE_NOT_FOUND.  With recursive, existing directories are fine (mkdir -p);
 * an existing non-directory is still FILE_EXISTS. */
int fsops_mkdir(const char *path, bool recursive, struct sp_error **err);

/* Delete a file or a symlink (the link itself, never its target).  A
 * directory is IS_DIRECTORY (400) "Cannot delete directory with deleteFile()
 * at '<p>'. Use exec('rm -rf <p>') instead." unless recursive, which removes
 * the tree without following symlinks: the walk goes through directory file
 * descriptors opened O_NOFOLLOW|O_DIRECTORY, so a symlink swapped in during
 * the walk is unlinked, never descended into.  As with rm -rf, a directory
 * we may not read or write stops it (PERMISSION_DENIED naming the entry;
 * what was removed before stays removed); trees deeper than 256 levels are
 * FILESYSTEM_ERROR (500).  "/" and paths ending in "." or ".." are refused
 * (VALIDATION_FAILED).  Missing -> FILE_NOT_FOUND "File not found: <p>". */
int fsops_delete(const char *path, bool recursive, struct sp_error **err);

/* rename(2) from -> to, with rename(2)'s rules (a file replaces a file, a
 * directory replaces an empty directory; no "move into directory" as mv
 * does).  A missing source is FILE_NOT_FOUND "Source file not found: <p>".
 * Across filesystems (EXDEV) the source is copied next to the target under
 * a temporary name (regular files, directories, symlinks as symlinks and
 * FIFOs; permission bits and modification times kept; a device or socket
 * in the tree makes it fail), renamed over the target, then the source is
 * deleted.  The copy is not atomic with respect to the source; if it fails,
 * the partial copy is removed and the source is left as it was. */
int fsops_rename(const char *from, const char *to, struct sp_error **err);

/* `test -e`: follows symlinks, so a dangling symlink or a symlink loop does
 * not exist.  ENOENT, ENOTDIR, ELOOP and ENAMETOOLONG give *exists = false;
 * EACCES is PERMISSION_DENIED.  is_dir may be NULL. */
int fsops_exists(const char *path, bool *exists, bool *is_dir,
                 struct sp_error **err);

/* The SDK's FileInfo[] for the entries under path (not path itself), sorted
 * by relativePath (byte order):
 *   {name, absolutePath, relativePath, type: "file"|"directory"|"symlink"|
 *    "other", size, modifiedAt: "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC),
 *    mode: "rwxr-xr-x", permissions: {readable, writable, executable}}
 * (mode from the 0777 bits only; permissions from the owner bits; size is
 * st_size, so a symlink's is the length of its target).  Symlinks are
 * reported, never followed (path itself may be a symlink to a directory).
 * Hidden entries (name starting with '.') are left out unless
 * include_hidden, and so are the contents of hidden directories (the SDK's
 * find-based listing shows those; we do not).  recursive descends at most
 * FSOPS_LIST_MAX_DEPTH levels; unreadable subdirectories are listed but not
 * descended into.  At most max_entries entries are returned (0: no limit):
 * *truncated (may be NULL) is set when entries were left out because of
 * the cap or the depth limit; the entries kept are the first ones of a
 * depth-first walk in name order.
 * Missing -> FILE_NOT_FOUND "Directory not found: <p>"; not a directory ->
 * NOT_DIRECTORY (400).  Returns a new cJSON array, or NULL with *err. */
cJSON *fsops_list(const char *path, bool recursive, bool include_hidden,
                  size_t max_entries, bool *truncated, struct sp_error **err);

#endif
