// faultfs.c — an LD_PRELOAD library that makes file I/O fail on demand, for the fault
// tests (tests/integration/fault_test.cpp). Test-only; never installed.
//
// Environment:
//   SLUICE_FAULT_DIR  only files whose path starts with this directory are affected
//   SLUICE_FAULT_CTL  a control file; while it exists, its words say what fails:
//                       write=EIO|ENOSPC   write, pwrite, pwrite64, writev, ftruncate
//                       sync=EIO           fsync, fdatasync
//                       read=EIO           read, pread, pread64 (regular files only)
//                       delay=MS           fsync and fdatasync take MS milliseconds more
//                                          (a slow disk; counted as "d" in .hits)
//                       rename=EIO         rename, renameat (decided by the new name)
//                       suffix=S           rename: only new names ending with S
//                       under=PATH         only under PATH instead of SLUICE_FAULT_DIR
//                     an absent or empty file means no faults.
//
// It wraps the libc entry points other libraries call through the PLT (SQLite's pwrite64
// and fdatasync, the SDK's write, libstdc++'s file streams). Not wrapped: glibc's own
// FILE* stdio (its calls stay inside libc), the _FORTIFY_SOURCE variants (__read_chk…),
// readv/preadv/pwritev, copy_file_range, sendfile, fallocate, renameat2, link and unlink.
// errno is left as it was unless the call is faulted. Every faulted call is counted in
// <SLUICE_FAULT_CTL>.hits (one byte appended per hit), so a test can check that the fault
// really hit the process it meant.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum kind { k_write, k_sync, k_read, k_rename };

// The control file's words, read with raw system calls (read() itself is wrapped here);
// false when there are none.
static int read_words(const char* ctl, char* words, size_t size) {
  int cfd = (int)syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC);
  if (cfd < 0) return 0;
  long n = syscall(SYS_read, cfd, words, size - 1);
  syscall(SYS_close, cfd);
  if (n <= 0) return 0;
  words[n] = '\0';
  return 1;
}

// The value of word `key` (e.g. "under=") copied into out; false if absent.
static int word_value(const char* words, const char* key, char* out, size_t size) {
  const char* w = strstr(words, key);
  if (!w) return 0;
  size_t i = 0;
  for (w += strlen(key); *w && *w != ' ' && *w != '\n' && i + 1 < size; ++w)
    out[i++] = *w;
  out[i] = '\0';
  return 1;
}

// Whether path is dir or below it.
static int in_dir(const char* path, const char* dir) {
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/')
    --dl;  // "/x/" names the same directory as "/x"
  return strncmp(path, dir, dl) == 0 && (path[dl] == '/' || path[dl] == '\0');
}

static void record_hit(const char* ctl, const char* what) {
  char hits[PATH_MAX + 8];
  snprintf(hits, sizeof hits, "%s.hits", ctl);
  int hfd =
      (int)syscall(SYS_openat, AT_FDCWD, hits, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (hfd >= 0) {
    syscall(SYS_write, hfd, what, 1);
    syscall(SYS_close, hfd);
  }
}

static int errno_named(const char* w) {
  return strncmp(w, "ENOSPC", 6) == 0 ? ENOSPC : strncmp(w, "EIO", 3) == 0 ? EIO : 0;
}

// Whether the call of this kind on `path` (or, with path NULL, on `fd`) must fail; if so,
// the errno to fail with. A delayed sync sleeps here.
static int fault_for_(int fd, const char* path, enum kind k);

static int fault_for(int fd, const char* path, enum kind k) {
  const int saved = errno;
  const int e = fault_for_(fd, path, k);
  errno = saved;
  return e;
}

static int fault_for_(int fd, const char* path_arg, enum kind k) {
  const char* ctl = getenv("SLUICE_FAULT_CTL");
  const char* dir = getenv("SLUICE_FAULT_DIR");
  if (!ctl || !dir || !*dir) return 0;
  char words[256];
  if (!read_words(ctl, words, sizeof words)) return 0;
  static const char* const keys[] = {"write=", "sync=", "read=", "rename="};
  char value[32];
  int err = word_value(words, keys[k], value, sizeof value) ? errno_named(value) : 0;
  long delay_ms = 0;
  if (k == k_sync && word_value(words, "delay=", value, sizeof value))
    delay_ms = strtol(value, NULL, 10);
  if (!err && delay_ms <= 0) return 0;
  char under[PATH_MAX];
  if (word_value(words, "under=", under, sizeof under)) dir = under;
  char path[PATH_MAX];
  if (path_arg) {
    // rename's paths as given, made absolute against the working directory.
    if (path_arg[0] == '/') {
      snprintf(path, sizeof path, "%s", path_arg);
    } else {
      char cwd[PATH_MAX];
      if (!getcwd(cwd, sizeof cwd)) return 0;
      snprintf(path, sizeof path, "%s/%s", cwd, path_arg);
    }
    char suffix[64];
    if (word_value(words, "suffix=", suffix, sizeof suffix)) {
      size_t pl = strlen(path), sl = strlen(suffix);
      if (pl < sl || strcmp(path + pl - sl, suffix) != 0) return 0;
    }
  } else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0) return 0;
    path[len] = '\0';
  }
  if (!in_dir(path, dir)) return 0;
  if (k == k_read) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  }
  static const char* const hit_names[] = {"w", "s", "r", "n"};
  record_hit(ctl, err ? hit_names[k] : "d");
  if (!err && delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  return err;
}

// The next definitions (libc's, or the sanitizer's interceptors), resolved once when the
// library is loaded, before any thread of the process runs.
#define NEXT_DECL(name) static __typeof__(name)* next_##name
NEXT_DECL(write);
NEXT_DECL(pwrite);
NEXT_DECL(pwrite64);
NEXT_DECL(writev);
NEXT_DECL(ftruncate);
NEXT_DECL(ftruncate64);
NEXT_DECL(fsync);
NEXT_DECL(fdatasync);
NEXT_DECL(read);
NEXT_DECL(pread);
NEXT_DECL(pread64);
NEXT_DECL(rename);
NEXT_DECL(renameat);

#define RESOLVE(name) next_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)
__attribute__((constructor)) static void resolve_next(void) {
  RESOLVE(write);
  RESOLVE(pwrite);
  RESOLVE(pwrite64);
  RESOLVE(writev);
  RESOLVE(ftruncate);
  RESOLVE(ftruncate64);
  RESOLVE(fsync);
  RESOLVE(fdatasync);
  RESOLVE(read);
  RESOLVE(pread);
  RESOLVE(pread64);
  RESOLVE(rename);
  RESOLVE(renameat);
}

// A call made before the constructor ran (by another library's constructor) resolves here.
#define NEXT(name) \
  if (!next_##name) next_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)

#define FAIL_IF(fd, k)                   \
  do {                                   \
    int e_ = fault_for((fd), NULL, (k)); \
    if (e_) {                            \
      errno = e_;                        \
      return -1;                         \
    }                                    \
  } while (0)

ssize_t write(int fd, const void* buf, size_t n) {
  NEXT(write);
  FAIL_IF(fd, k_write);
  return next_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  NEXT(pwrite);
  FAIL_IF(fd, k_write);
  return next_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  NEXT(pwrite64);
  FAIL_IF(fd, k_write);
  return next_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  NEXT(writev);
  FAIL_IF(fd, k_write);
  return next_writev(fd, iov, cnt);
}

int ftruncate(int fd, off_t len) {
  NEXT(ftruncate);
  FAIL_IF(fd, k_write);
  return next_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
  NEXT(ftruncate64);
  FAIL_IF(fd, k_write);
  return next_ftruncate64(fd, len);
}

int fsync(int fd) {
  NEXT(fsync);
  FAIL_IF(fd, k_sync);
  return next_fsync(fd);
}

int fdatasync(int fd) {
  NEXT(fdatasync);
  FAIL_IF(fd, k_sync);
  return next_fdatasync(fd);
}

ssize_t read(int fd, void* buf, size_t n) {
  NEXT(read);
  FAIL_IF(fd, k_read);
  return next_read(fd, buf, n);
}

ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  NEXT(pread);
  FAIL_IF(fd, k_read);
  return next_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  NEXT(pread64);
  FAIL_IF(fd, k_read);
  return next_pread64(fd, buf, n, off);
}

// The new name decides (under the directory, ending with suffix= when given).
int rename(const char* from, const char* to) {
  NEXT(rename);
  int e = fault_for(-1, to, k_rename);
  if (e) {
    errno = e;
    return -1;
  }
  return next_rename(from, to);
}

int renameat(int fromfd, const char* from, int tofd, const char* to) {
  NEXT(renameat);
  if (tofd == AT_FDCWD || to[0] == '/') {
    int e = fault_for(-1, to, k_rename);
    if (e) {
      errno = e;
      return -1;
    }
  }
  return next_renameat(fromfd, from, tofd, to);
}
