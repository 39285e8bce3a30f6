/*
 * berth's spawn addon: the launcher started with posix_spawn from a Node process that
 * has not loaded koffi (the CLI). libuv's spawn forks: every page table of the Node
 * process is copied, then torn down again by the child's execve, while the event
 * loop waits (~3.5 ms per spawn of a 40 MiB CLI). glibc's posix_spawn is
 * clone(CLONE_VM|CLONE_VFORK): nothing is copied, the parent waits only for the
 * execve (~1 ms). Loaded with process.dlopen by @berth/sys (src/handles.ts) after
 * the same checks as the prebuilt launcher (sha256 in dist/launcher.json, trusted
 * owner and directories); wherever it is missing, untrusted or fails to load,
 * libuv's spawn is used.
 *
 * Node-API is declared here, not included: the functions are resolved from the
 * node binary when the addon is loaded, and building needs no Node headers.
 *
 * spawn(path, argv, envp, fds, setsid) -> pid, or -errno
 *   fds[i] is the parent's fd that becomes the child's fd i (-1: /dev/null for
 *   0-2, closed above); every other fd is closed before the execve (closefrom),
 *   CLOEXEC or not. Signal dispositions are reset to their defaults and the
 *   signal mask emptied (Node ignores SIGPIPE and blocks some signals), except
 *   glibc's internal signals 32 and 33, which glibc's posix_spawn leaves
 *   ignored in the child: the launcher resets every signal itself.
 * socketpair() -> [fd, fd] (AF_UNIX, SOCK_STREAM, CLOEXEC), or -errno
 * reap(pid) -> the wait status once it has exited, -1 while it runs, or -errno
 *   (waitpid of that pid only: libuv reaps its own children by pid too).
 * flock(fd, op) -> 0, or -errno (flock(2); @berth/sys's ProcessLock uses LOCK_EX|LOCK_NB,
 *   so a CLI command takes its lock without loading koffi).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status; /* napi_ok is 0 */
typedef napi_value (*napi_callback)(napi_env, napi_callback_info);
napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
napi_status napi_get_value_string_utf8(napi_env, napi_value, char *, size_t, size_t *);
napi_status napi_get_array_length(napi_env, napi_value, uint32_t *);
napi_status napi_get_element(napi_env, napi_value, uint32_t, napi_value *);
napi_status napi_get_value_int32(napi_env, napi_value, int32_t *);
napi_status napi_get_value_bool(napi_env, napi_value, bool *);
napi_status napi_create_int32(napi_env, int32_t, napi_value *);
napi_status napi_create_array_with_length(napi_env, size_t, napi_value *);
napi_status napi_set_element(napi_env, napi_value, uint32_t, napi_value);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
napi_status napi_throw_type_error(napi_env, const char *, const char *);

#define MAX_FDS 1024
#define MAX_STRINGS 4096

static napi_value int32(napi_env env, int32_t i) {
  napi_value r = NULL;
  napi_create_int32(env, i, &r);
  return r;
}

static napi_value bad(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

/* a JS string, malloc'd (NULL: not a string, or no memory) */
static char *string(napi_env env, napi_value v) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != 0) return NULL;
  char *s = malloc(n + 1);
  if (s && napi_get_value_string_utf8(env, v, s, n + 1, &n) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

static void free_strings(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* a JS array of strings, NULL-terminated and malloc'd (NULL: not one) */
static char **strings(napi_env env, napi_value a) {
  uint32_t n = 0;
  if (napi_get_array_length(env, a, &n) != 0 || n > MAX_STRINGS) return NULL;
  char **v = calloc((size_t)n + 1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, a, i, &e) != 0 || !(v[i] = string(env, e))) {
      free_strings(v);
      return NULL;
    }
  }
  return v;
}

static napi_value spawn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != 0 || argc != 5)
    return bad(env, "spawn(path, argv, envp, fds, setsid)");
  uint32_t nfds = 0;
  bool setsid = false;
  if (napi_get_array_length(env, a[3], &nfds) != 0 || nfds > MAX_FDS || napi_get_value_bool(env, a[4], &setsid) != 0)
    return bad(env, "spawn: fds must be an array of numbers, setsid a boolean");
  int32_t *want = calloc(nfds ? nfds : 1, sizeof *want);
  int *moved = calloc(nfds ? nfds : 1, sizeof *moved);
  char *path = string(env, a[0]);
  char **argv = strings(env, a[1]);
  char **envp = strings(env, a[2]);
  napi_value result = NULL;
  int err = 0, devnull = -1;
  if (!want || !moved || !path || !argv || !envp) {
    result = bad(env, "spawn: path, argv and envp must be strings");
    goto out;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value e;
    moved[i] = -1;
    if (napi_get_element(env, a[3], i, &e) != 0 || napi_get_value_int32(env, e, &want[i]) != 0) {
      result = bad(env, "spawn: fds must be an array of numbers");
      goto out;
    }
  }
  /* Every source is first copied above the fds the child gets (CLOEXEC, the parent's), so that
   * no dup2 of the file actions overwrites a source a later one still needs. */
  for (uint32_t i = 0; i < nfds; i++) {
    int src = want[i];
    if (src < 0 && i < 3) {
      if (devnull < 0 && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        err = errno;
        goto out;
      }
      src = devnull;
    }
    if (src < 0) continue;
    if ((moved[i] = fcntl(src, F_DUPFD_CLOEXEC, (int)nfds)) < 0) {
      err = errno;
      goto out;
    }
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  if ((err = posix_spawn_file_actions_init(&fa)) != 0) goto out;
  if ((err = posix_spawnattr_init(&at)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    goto out;
  }
  for (uint32_t i = 0; i < nfds && !err; i++)
    if (moved[i] >= 0) err = posix_spawn_file_actions_adddup2(&fa, moved[i], (int)i);
  if (!err) err = posix_spawn_file_actions_addclosefrom_np(&fa, (int)nfds);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  if (!err) err = posix_spawnattr_setsigdefault(&at, &all);
  if (!err) err = posix_spawnattr_setsigmask(&at, &none);
  if (!err)
    err = posix_spawnattr_setflags(
        &at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (setsid ? POSIX_SPAWN_SETSID : 0));
  pid_t pid = 0;
  if (!err) err = posix_spawn(&pid, path, &fa, &at, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (!err) result = int32(env, pid);
out:
  if (!result && err) result = int32(env, -err);
  for (uint32_t i = 0; moved && i < nfds; i++)
    if (moved[i] >= 0) close(moved[i]);
  if (devnull >= 0) close(devnull);
  free(want);
  free(moved);
  free(path);
  free_strings(argv);
  free_strings(envp);
  return result;
}

static napi_value pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return int32(env, -errno);
  napi_value r;
  if (napi_create_array_with_length(env, 2, &r) != 0 || napi_set_element(env, r, 0, int32(env, sv[0])) != 0 ||
      napi_set_element(env, r, 1, int32(env, sv[1])) != 0) {
    close(sv[0]);
    close(sv[1]);
    return bad(env, "socketpair: no memory");
  }
  return r;
}

static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  int32_t pid;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != 0 || argc != 1 ||
      napi_get_value_int32(env, a[0], &pid) != 0 || pid <= 0)
    return bad(env, "reap(pid)");
  int st;
  pid_t r;
  do r = waitpid(pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) return int32(env, -errno);
  return int32(env, r == pid ? st : -1);
}

static napi_value lock(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  int32_t fd, op;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != 0 || argc != 2 ||
      napi_get_value_int32(env, a[0], &fd) != 0 || napi_get_value_int32(env, a[1], &op) != 0 || fd < 0)
    return bad(env, "flock(fd, op)");
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  return int32(env, r < 0 ? -errno : 0);
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"spawn", spawn}, {"socketpair", pair}, {"reap", reap}, {"flock", lock}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, strlen(fns[i].name), fns[i].fn, NULL, &f) != 0 ||
        napi_set_named_property(env, exports, fns[i].name, f) != 0)
      return NULL;
  }
  return exports;
}
