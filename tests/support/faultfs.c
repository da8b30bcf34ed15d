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
//                       under=PATH         only under PATH instead of SLUICE_FAULT_DIR
//                     an absent or empty file means no faults.
//
// It wraps the libc entry points other libraries call through the PLT (SQLite's pwrite64
// and fdatasync, the SDK's write, libstdc++'s file streams). Not wrapped: glibc's own
// FILE* stdio (its calls stay inside libc), the _FORTIFY_SOURCE variants (__read_chk…),
// readv/preadv/pwritev, copy_file_range, sendfile, fallocate, rename, link and unlink.
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

enum kind { k_write, k_sync, k_read };

// Whether the call on `fd` of this kind must fail; if so, the errno to fail with.
static int fault_for_(int fd, enum kind k);

static int fault_for(int fd, enum kind k) {
  const int saved = errno;
  const int e = fault_for_(fd, k);
  errno = saved;
  return e;
}

static int fault_for_(int fd, enum kind k) {
  const char* ctl = getenv("SLUICE_FAULT_CTL");
  const char* dir = getenv("SLUICE_FAULT_DIR");
  if (!ctl || !dir || !*dir) return 0;
  // The control file, read with raw system calls: read() itself is wrapped here.
  int cfd = (int)syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC);
  if (cfd < 0) return 0;
  char words[256];
  long n = syscall(SYS_read, cfd, words, sizeof words - 1);
  syscall(SYS_close, cfd);
  if (n <= 0) return 0;
  words[n] = '\0';
  const char* key = k == k_write ? "write=" : k == k_sync ? "sync=" : "read=";
  const char* w = strstr(words, key);
  int err = 0;
  if (w) {
    w += strlen(key);
    err = strncmp(w, "ENOSPC", 6) == 0 ? ENOSPC : strncmp(w, "EIO", 3) == 0 ? EIO : 0;
  }
  long delay_ms = 0;
  const char* d = k == k_sync ? strstr(words, "delay=") : NULL;
  if (d) delay_ms = strtol(d + 6, NULL, 10);
  if (!err && delay_ms <= 0) return 0;
  char under[PATH_MAX];
  const char* u = strstr(words, "under=");
  if (u) {
    size_t i = 0;
    for (u += 6; *u && *u != ' ' && *u != '\n' && i + 1 < sizeof under; ++u)
      under[i++] = *u;
    under[i] = '\0';
    dir = under;
  }
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t len = readlink(link, path, sizeof path - 1);
  if (len <= 0) return 0;
  path[len] = '\0';
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/')
    --dl;  // "/x/" names the same directory as "/x"
  if (strncmp(path, dir, dl) != 0 || (path[dl] != '/' && path[dl] != '\0')) return 0;
  if (k == k_read) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  }
  char hits[PATH_MAX + 8];
  snprintf(hits, sizeof hits, "%s.hits", ctl);
  int hfd =
      (int)syscall(SYS_openat, AT_FDCWD, hits, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (hfd >= 0) {
    syscall(SYS_write, hfd, err ? (k == k_write ? "w" : k == k_sync ? "s" : "r") : "d", 1);
    syscall(SYS_close, hfd);
  }
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
}

// A call made before the constructor ran (by another library's constructor) resolves here.
#define NEXT(name) \
  if (!next_##name) next_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)

#define FAIL_IF(fd, k)             \
  do {                             \
    int e_ = fault_for((fd), (k)); \
    if (e_) {                      \
      errno = e_;                  \
      return -1;                   \
    }                              \
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
