/* Directory trees into and out of a sandbox as tar archives (libarchive).
 *
 * Like fsops, these act with the calling thread's credentials (the caller
 * switches fsuid/fsgid to the sandbox user), so what the kernel lets that
 * user do is the outer boundary; the checks below keep a hostile archive
 * from writing anywhere but under the destination even so.
 *
 * Refusals are 4xx sp_errors whose message names the offending entry:
 *   UNSAFE_ARCHIVE_ENTRY (400)  path or link problems, special files
 *   ARCHIVE_TOO_LARGE    (413)  a limit of struct tar_limits was hit
 *   INVALID_ARCHIVE      (400)  not a (gzipped) tar, or corrupt
 * Every error carries context.path (the destination or source directory).
 *
 * libarchive is not linked: it is loaded with dlopen() on first use (with
 * its chain, libxml2, ICU and libstdc++, about 2.3 MB resident, which a
 * process that never handles an archive should not carry).  When it cannot
 * be loaded, every call fails with ARCHIVE_UNAVAILABLE (500). */
#ifndef SP_TARBALL_H
#define SP_TARBALL_H

#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>

struct sp_error;

/* The libarchive functions this program uses (tarball.c and the Docker
 * backend's build contexts), resolved from the loaded library.  A function
 * used anywhere else must be added here: nothing links libarchive. */
#define TAR_LIBARCHIVE_FUNCS(X)                                                \
  X(archive_entry_copy_hardlink) X(archive_entry_copy_pathname)                \
  X(archive_entry_copy_stat) X(archive_entry_copy_symlink)                     \
  X(archive_entry_filetype) X(archive_entry_free) X(archive_entry_hardlink)    \
  X(archive_entry_linkify) X(archive_entry_linkresolver_free)                  \
  X(archive_entry_linkresolver_new) X(archive_entry_linkresolver_set_strategy) \
  X(archive_entry_new) X(archive_entry_pathname) X(archive_entry_perm)         \
  X(archive_entry_set_gid) X(archive_entry_set_pathname)                       \
  X(archive_entry_set_perm) X(archive_entry_set_size)                          \
  X(archive_entry_set_symlink) X(archive_entry_set_uid) X(archive_entry_size)  \
  X(archive_entry_size_is_set) X(archive_entry_symlink) X(archive_errno)       \
  X(archive_error_string) X(archive_filter_bytes) X(archive_format)            \
  X(archive_read_data_block) X(archive_read_free) X(archive_read_new)          \
  X(archive_read_next_header) X(archive_read_open_fd)                          \
  X(archive_read_support_filter_gzip) X(archive_read_support_format_tar)       \
  X(archive_set_error) X(archive_write_close) X(archive_write_data)            \
  X(archive_write_data_block) X(archive_write_disk_new)                        \
  X(archive_write_disk_set_options) X(archive_write_finish_entry)              \
  X(archive_write_free) X(archive_write_header) X(archive_write_new)           \
  X(archive_write_open2) X(archive_write_open_fd)                              \
  X(archive_write_set_bytes_in_last_block)                                     \
  X(archive_write_set_format_pax_restricted)

/* One pointer per function, of the type archive.h declares it with. */
struct tar_libarchive {
#define TAR_LIBARCHIVE_MEMBER(f) __typeof__(f) *f;
  TAR_LIBARCHIVE_FUNCS(TAR_LIBARCHIVE_MEMBER)
#undef TAR_LIBARCHIVE_MEMBER
};

/* libarchive.so.13, loaded by the first call in the process (any thread;
 * later calls return the same table at once, or the same failure).  NULL
 * with ARCHIVE_UNAVAILABLE (500) if the library or one of the functions is
 * missing. */
const struct tar_libarchive *tar_libarchive(struct sp_error **err);

/* A field left at 0 takes its default. */
struct tar_limits {
  uint64_t max_entries;     /* default 100000 */
  uint64_t max_total_bytes; /* uncompressed file data, default 2 GiB */
  uint64_t max_entry_bytes; /* one entry's data, default 1 GiB */
  double max_ratio;         /* uncompressed / compressed, default 200 */
};

#define TAR_DEFAULT_MAX_ENTRIES 100000u
#define TAR_DEFAULT_MAX_TOTAL_BYTES (2ull << 30)
#define TAR_DEFAULT_MAX_ENTRY_BYTES (1ull << 30)
#define TAR_DEFAULT_MAX_RATIO 200.0
/* The compression ratio is only enforced once this much of the tar stream
 * has been decompressed, so small, very compressible archives (a few MiB of
 * zeros) are not refused. */
#define TAR_RATIO_MIN_BYTES (8ull << 20)

struct tar_stats {
  uint64_t entries; /* archive entries seen (extract) or written (create) */
  uint64_t bytes;   /* file data bytes extracted or archived */
};

/* Extract a tar archive, plain or gzip-compressed (detected from the data),
 * read from fd (a spooled upload, read from its current offset) into
 * dest_dir, which is created (with its parents) if missing.  Only the tar
 * formats (ustar, pax, GNU, v7) are read.
 *
 * Entry names are relative to dest_dir; refused (UNSAFE_ARCHIVE_ENTRY):
 *   - absolute names and names with a ".." component;
 *   - symlinks whose target is absolute or, resolved lexically from the
 *     link's directory, leaves dest_dir;
 *   - hard links whose target is absolute, has a ".." component, goes
 *     through a symlink or is one;
 *   - any entry that would be written through a symlink (one created by an
 *     earlier entry or already there), e.g. "dir -> sub" then "dir/x";
 *   - device nodes, FIFOs, sockets;
 *   - paths of PATH_MAX bytes or more once under dest_dir (libarchive would
 *     chdir() to create them, moving the whole process's cwd).
 * Ownership is not restored (files belong to the extracting user), the
 * setuid/setgid/sticky bits are dropped and the umask applies; modification
 * times are restored.  Existing files are overwritten; a symlink in the way
 * of an entry's final component is replaced.
 *
 * Limits (ARCHIVE_TOO_LARGE): more than max_entries entries, an entry over
 * max_entry_bytes (by its header, or by the data actually read), more than
 * max_total_bytes of data actually read, or once TAR_RATIO_MIN_BYTES of tar
 * stream have been decompressed, a ratio of decompressed tar stream to
 * compressed input consumed above max_ratio.  Data limits are checked as
 * the data is read, so a bomb stops early.
 *
 * lim may be NULL (defaults); st may be NULL and is filled in on failure too.
 * On failure, entries extracted before the failing one stay on disk (there
 * is no rollback); a regular file whose data was cut short (a limit, corrupt
 * input, a write error) is removed rather than left partial. */
int tar_extract(int fd, const char *dest_dir, const struct tar_limits *lim,
                struct tar_stats *st, struct sp_error **err);

/* Write the tree under src_dir as a pax tar (ustar headers, pax extensions
 * only when needed) to out_fd.  Names are relative ("a", "a/b"; src_dir
 * itself is not an entry), entries are in name order, symlinks are stored as
 * symlinks (never followed; src_dir itself may be a symlink to a directory),
 * files with several links inside the tree are stored once plus hard links,
 * and FIFOs, sockets and devices are skipped.  Missing src_dir ->
 * FILE_NOT_FOUND, not a directory -> NOT_DIRECTORY; an unreadable file or
 * directory inside the tree fails the whole call (PERMISSION_DENIED naming
 * it).  st may be NULL. */
int tar_create(const char *src_dir, int out_fd, struct tar_stats *st,
               struct sp_error **err);

#endif
