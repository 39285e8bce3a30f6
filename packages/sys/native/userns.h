/*
 * User namespaces: id maps written by the parent, root inside, idmapped mounts.
 * Included by launcher.c; static functions only.
 *
 * OP_IDMAP (45), just before the clone that creates the user namespace:
 *   args: i writer, i setgroups, s uid_map, s gid_map, s newuidmap, s newgidmap.
 *   The step only records the maps (and checks that the next step is a clone with
 *   CLONE_NEWUSER). The clone step's parent half then calls idmap_after_clone(pid)
 *   while the child still waits on its order pipe (the "ns-ready" point of runc's
 *   nsexec): the maps go to the pid clone() returned, never to a pid from the plan.
 *   writer 0: the launcher writes /proc/PID/setgroups, gid_map, uid_map itself,
 *             through the verified procfs handle (paths.h: proc_write);
 *   writer 1: it runs newuidmap / newgidmap (absolute paths from the plan) with the
 *             pid and the "inside outside count" triples, and waits for them; their
 *             stderr ends up in the error.
 *   setgroups: 0 leave as the kernel made it ("allow"), 1 write "deny" (before
 *   gid_map, as the kernel requires), 2 write "allow".
 *   Map text: "inside outside count\n" lines, as /proc/PID/uid_map takes them.
 *   Without root the launcher and (by inheritance) the child are dumpable from this step
 *   until the maps are written (parent) / the child's first sync returns (the runtime and
 *   a user-mode network helper open /proc/PID/ns/ files there): the /proc files of a
 *   non-dumpable process belong to root, and an unprivileged writer could not open them.
 *   As root the child is made non-dumpable again in OP_USERNS_ROOT.
 *
 * OP_USERNS_ROOT (46), in the child after the clone: become root of the new user
 *   namespace (setresgid/setresuid 0, and setgroups(0) where setgroups is allowed),
 *   as runc does before its mounts.  args: i setgroups (the same value as OP_IDMAP).
 *
 * OP_IDMAP_USERNS (47), before the clone: a user namespace that only serves as the
 *   mapping of idmapped mounts (a helper process is cloned into it, its maps written
 *   as above, its /proc/PID/ns/user kept open, the helper reaped).
 *   args: i slot (0..63), then the six arguments of OP_IDMAP.
 *
 * OP_IDMAP_BIND (48): an idmapped bind mount: open_tree(OPEN_TREE_CLONE) of the
 *   source, mount_setattr(MOUNT_ATTR_IDMAP, the slot's user namespace) on the
 *   detached clone (slot -1: none, a plain copy), slave propagation, move_mount onto
 *   the target fd (resolved in the root with FLAG_IN_ROOT, else a host path).
 *   args: s source, s target, i slot, i recursive.
 *
 * OP_IDMAP_TREE (54), before the clone: a detached copy of an idmapped bind mount's source
 *   (open_tree OPEN_TREE_CLONE, by the launcher: the host's view of the path and the
 *   launcher's rights, so a source the container's user namespace could not reach is fine),
 *   with MOUNT_ATTR_IDMAP from the slot's user namespace, the bind's flags, and slave
 *   propagation (a copy of a shared host mount would otherwise be a peer of it: what the
 *   container mounts below it would reach the host) set on the copy before it is attached
 *   anywhere. It is held by fd in tree slot k, unattached, until OP_BIND_TREE; the parent
 *   closes its copies after the clone.
 *   args: s source, i slot, i rec (rbind: with submounts), i idmap_rec (ridmap: the
 *   submounts idmapped too), i flags (MS_RDONLY, MS_NOSUID, ...), i k, s root (when set:
 *   the source is a path in this rootfs, resolved in it with RESOLVE_IN_ROOT).
 *
 * OP_BIND_TREE (55), in the child: tree k attached onto the target (move_mount), then closed.
 *   args: i k, s target (FLAG_IN_ROOT: resolved in the container's root).
 *
 * OP_ROOT_REBIND (49), in the child: its root is its working directory (the launcher
 *   chdir'ed into the rootfs before the clone, and clone carries the cwd into the new
 *   mount namespace, so no directory above the rootfs is searched as the mapped root).
 *   The cwd's mount is bound onto itself (open_tree + move_mount): in a mount namespace
 *   of a new user namespace every copied mount is locked and pivot_root refuses a locked
 *   new root; the new bind is the container's own. The bind's fd becomes the root (paths.h).
 *   No args.
 *
 * 33 is unused.
 */
#ifndef BERTH_USERNS_H
#define BERTH_USERNS_H

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif

enum {
  OP_IDMAP = 45, OP_USERNS_ROOT = 46, OP_IDMAP_USERNS = 47, OP_IDMAP_BIND = 48, OP_ROOT_REBIND = 49,
  OP_IDMAP_TREE = 54, OP_BIND_TREE = 55
};

#define IDMAP_SLOTS 64
#define TREE_SLOTS 1024

struct idmap_req {
  int writer;
  int setgroups;
  const char *uid_map, *gid_map, *newuidmap, *newgidmap;
};

static struct idmap_req pending_idmap;
static int have_pending_idmap = 0;
static int pending_idmap_step = -1;
static int idmap_userns_fd[IDMAP_SLOTS]; /* fd + 1: 0 is an empty slot */
static int tree_fd[TREE_SLOTS];          /* fd + 1: 0 is an empty slot */
static int userns_setgroups_denied = 0; /* the child: setgroups(2) is refused in its namespace */
/* the user namespace the launcher started in refuses setgroups(2) (`unshare -r` makes such a one) */
static int inherited_setgroups_denied = 0;

/*
 * Whether this process's user namespace refuses setgroups(2), read at start-up from the
 * host's procfs (before any namespace or mount of the container): with no groups to set, the
 * container then keeps the supplementary groups it has (the user's), as runc does there.
 */
static int setgroups_denied_here(void) {
  if (proc_fd < 0) return 0;
  int fd = openat(proc_fd, "self/setgroups", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  char buf[16] = {0};
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  return r >= 4 && strncmp(buf, "deny", 4) == 0;
}
static int idmap_unprivileged = 0;      /* the maps are written without root: see step_idmap */
static int userns_dumpable = 0;         /* the child is still dumpable until its first sync returns */
static char idmap_errbuf[48];

static void idmap_from_step(struct step *s, uint32_t first, struct idmap_req *r) {
  r->writer = (int)I(s, first);
  r->setgroups = (int)I(s, first + 1);
  r->uid_map = Sx(s, first + 2);
  r->gid_map = Sx(s, first + 3);
  r->newuidmap = Sx(s, first + 4);
  r->newgidmap = Sx(s, first + 5);
}

/* Runs `tool pid inside outside count ...` and waits; stderr's first line goes into `what`. */
static int run_map_tool(const char *tool, pid_t pid, const char *map, const char **what) {
  if (tool[0] != '/') return *what = "idmap: the map tool needs an absolute path", errno = EINVAL, -1;
  char *copy = strdup(map);
  if (!copy) return errno = ENOMEM, -1;
  /* argv: tool, pid, then every number of the map (3 per line, at most 340 lines) */
  char *argv[3 + 3 * 340 + 1];
  int argc = 0;
  char pidbuf[16];
  snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
  argv[argc++] = (char *)tool;
  argv[argc++] = pidbuf;
  for (char *save = NULL, *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
    if (argc >= 2 + 3 * 340) {
      free(copy);
      return *what = "idmap: too many map lines", errno = E2BIG, -1;
    }
    argv[argc++] = tok;
  }
  argv[argc] = NULL;
  if ((argc - 2) % 3 != 0 || argc == 2) {
    free(copy);
    return *what = "idmap: a map line is not three numbers", errno = EINVAL, -1;
  }
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) < 0) {
    free(copy);
    return -1;
  }
  pid_t t = fork();
  if (t < 0) {
    int e = errno;
    free(copy);
    close(errp[0]);
    close(errp[1]);
    return errno = e, -1;
  }
  if (t == 0) {
    dup2(errp[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
    }
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve(tool, argv, envp);
    dprintf(STDERR_FILENO, "exec %s: %s\n", tool, strerror(errno));
    _exit(127);
  }
  close(errp[1]);
  free(copy);
  char out[512];
  size_t have = 0;
  for (;;) {
    ssize_t k = read(errp[0], out + have, sizeof out - 1 - have);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    have += (size_t)k;
    if (have >= sizeof out - 1) { /* keep draining so the tool never blocks on a full pipe */
      char sink[256];
      while ((k = read(errp[0], sink, sizeof sink)) > 0 || (k < 0 && errno == EINTR)) {}
      break;
    }
  }
  out[have] = 0;
  close(errp[0]);
  int status = 0;
  while (waitpid(t, &status, 0) < 0)
    if (errno != EINTR) return -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  /* the tool's own words (newuidmap: "newuidmap: uid range [0-65536) -> ... not allowed") */
  char *nl = strchr(out, '\n');
  if (nl) *nl = 0;
  const char *base = strrchr(tool, '/') ? strrchr(tool, '/') + 1 : tool;
  if (out[0]) snprintf(idmap_errbuf, sizeof idmap_errbuf, "%.47s", out);
  else snprintf(idmap_errbuf, sizeof idmap_errbuf, "%.32s failed", base);
  *what = idmap_errbuf;
  if (out[0]) fprintf(stderr, "berth-launcher: %s: %s\n", tool, out);
  return errno = EPERM, -1;
}

/* Writes the maps of process `pid` (a child of this launcher) as `r` says. */
static int idmap_write(pid_t pid, const struct idmap_req *r, const char **what) {
  char rel[64];
  if (r->setgroups == 1 || r->setgroups == 2) {
    snprintf(rel, sizeof rel, "%d/setgroups", (int)pid);
    *what = "write setgroups";
    if (proc_write(rel, r->setgroups == 1 ? "deny" : "allow") < 0) return -1;
  }
  if (r->writer == 1) {
    if (r->gid_map[0] && run_map_tool(r->newgidmap, pid, r->gid_map, what) < 0) return -1;
    if (r->uid_map[0] && run_map_tool(r->newuidmap, pid, r->uid_map, what) < 0) return -1;
    return 0;
  }
  if (r->writer != 0) return *what = "idmap: unknown writer", errno = EINVAL, -1;
  if (r->gid_map[0]) {
    snprintf(rel, sizeof rel, "%d/gid_map", (int)pid);
    *what = "write gid_map";
    if (proc_write(rel, r->gid_map) < 0) return -1;
  }
  if (r->uid_map[0]) {
    snprintf(rel, sizeof rel, "%d/uid_map", (int)pid);
    *what = "write uid_map";
    if (proc_write(rel, r->uid_map) < 0) return -1;
  }
  return 0;
}

/* OP_IDMAP: remember the maps for the clone that follows. */
static int step_idmap(struct step *steps, uint32_t n, uint32_t i, const char **what) {
  struct step *s = &steps[i];
  *what = "idmap: no clone with CLONE_NEWUSER follows";
  if (i + 1 >= n || steps[i + 1].op != OP_CLONE || !((unsigned long)I(&steps[i + 1], 0) & CLONE_NEWUSER))
    return errno = EINVAL, -1;
  idmap_from_step(s, 0, &pending_idmap);
  have_pending_idmap = 1;
  pending_idmap_step = (int)i;
  idmap_unprivileged = geteuid() != 0;
  if (idmap_unprivileged) {
    /* Without root, /proc/CHILD/{setgroups,gid_map,uid_map} of a non-dumpable child belong to
     * root: the child is made dumpable (it inherits this) until it is root in its namespace
     * (OP_USERNS_ROOT), the launcher again once the maps are written. Only this same user
     * could ptrace either in that window, before anything of the container exists. */
    *what = "prctl PR_SET_DUMPABLE";
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) return -1;
  }
  return 0;
}

/*
 * The clone step's parent half, before it releases the child: the child is
 * blocked on its order pipe, so nothing in it has run yet. Dies on failure
 * (the child then sees its pipe close and exits).
 */
static void idmap_after_clone(pid_t pid, unsigned long flags) {
  if (!have_pending_idmap) return;
  have_pending_idmap = 0;
  const char *w = "idmap";
  if (!(flags & CLONE_NEWUSER)) die(pending_idmap_step, "idmap: no clone with CLONE_NEWUSER follows", EINVAL);
  int r = idmap_write(pid, &pending_idmap, &w);
  int e = errno;
  if (geteuid() != 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 && r == 0) {
    r = -1;
    e = errno;
    w = "prctl PR_SET_DUMPABLE";
  }
  if (r < 0) {
    kill(pid, SIGKILL);
    die(pending_idmap_step, w, e);
  }
}

/* OP_USERNS_ROOT: root inside the new namespace. */
static int step_userns_root(struct step *s, const char **what) {
  int sg = (int)I(s, 0);
  if (sg == 1) userns_setgroups_denied = 1;
  if (sg != 1) {
    *what = "setgroups";
    if (setgroups(0, NULL) < 0) {
      if (errno != EPERM) return -1;
      userns_setgroups_denied = 1; /* a writer (newgidmap) denied it */
    }
  }
  *what = "setresgid 0 (in the user namespace)";
  if (syscall(SYS_setresgid, 0, 0, 0) < 0) return -1;
  *what = "setresuid 0 (in the user namespace)";
  if (syscall(SYS_setresuid, 0, 0, 0) < 0) return -1;
  if (idmap_unprivileged) {
    /* without root, the runtime (and a user-mode network helper such as pasta, the user's
     * own processes) open /proc/PID/ns/ files at the ns-ready sync: dumpable until it returns */
    userns_dumpable = 1;
    return 0;
  }
  *what = "prctl PR_SET_DUMPABLE";
  return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* made dumpable for an unprivileged map writer (step_idmap) */
}

/* Called by step_sync once the runtime released the child: not dumpable from here on. */
static void userns_after_sync(void) {
  if (userns_dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0) userns_dumpable = 0;
}

/* OP_IDMAP_USERNS: a user namespace with the maps, held by fd in a slot. */
static int step_idmap_userns(struct step *s, const char **what) {
  int slot = (int)I(s, 0);
  *what = "idmap userns: bad slot";
  if (slot < 0 || slot >= IDMAP_SLOTS) return errno = EINVAL, -1;
  struct idmap_req r;
  idmap_from_step(s, 1, &r);
  int go[2];
  *what = "pipe";
  if (pipe2(go, O_CLOEXEC) < 0) return -1;
  *what = "clone (idmap user namespace)";
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) {
    int e = errno;
    close(go[0]);
    close(go[1]);
    return errno = e, -1;
  }
  if (pid == 0) {
    /* the helper: holds its namespace until the launcher has opened it, runs nothing */
    close(go[1]);
    char b;
    while (read(go[0], &b, 1) < 0 && errno == EINTR) {}
    _exit(0);
  }
  close(go[0]);
  int r0 = idmap_write(pid, &r, what);
  int fd = -1;
  if (r0 == 0) {
    char rel[64];
    snprintf(rel, sizeof rel, "%d/ns/user", (int)pid);
    *what = "open the idmap user namespace";
    fd = openat(proc_fd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0) r0 = -1;
  }
  int e = errno;
  close(go[1]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (r0 < 0) return errno = e, -1;
  if (idmap_userns_fd[slot] > 0) close(idmap_userns_fd[slot] - 1);
  idmap_userns_fd[slot] = fd + 1;
  return 0;
}

/* OP_IDMAP_TREE: an idmapped, detached copy of a bind source, held for OP_BIND_TREE. */
static int step_idmap_tree(struct step *s, const char **what) {
  const char *src = Sx(s, 0);
  int slot = (int)I(s, 1), rec = (int)I(s, 2), idmap_rec = (int)I(s, 3);
  unsigned long flags = (unsigned long)I(s, 4);
  int k = (int)I(s, 5);
  *what = "idmapped mount: bad slot";
  if (slot < 0 || slot >= IDMAP_SLOTS || idmap_userns_fd[slot] <= 0 || k < 0 || k >= TREE_SLOTS || tree_fd[k])
    return errno = EINVAL, -1;
  const char *root = S(s, 6);
  int src_fd = -1;
  if (root) {
    /* a source in the rootfs: resolved in it (RESOLVE_IN_ROOT), never by its host path */
    *what = "open the rootfs (idmapped mount source)";
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) return -1;
    *what = "open idmapped mount source (in the root)";
    src_fd = open_beneath(rfd, src, 0);
    int e = errno;
    close(rfd);
    if (src_fd < 0) return errno = e, -1;
  }
  *what = "open_tree (idmapped mount source)";
  int tree = (int)syscall(SYS_open_tree, src_fd >= 0 ? src_fd : AT_FDCWD, src_fd >= 0 ? "" : src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0) | (src_fd >= 0 ? AT_EMPTY_PATH : 0));
  if (src_fd >= 0) {
    int e = errno;
    close(src_fd);
    errno = e;
  }
  if (tree < 0) return -1;
  struct berth_mount_attr attr = {0};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = (uint64_t)(idmap_userns_fd[slot] - 1);
  *what = "mount_setattr MOUNT_ATTR_IDMAP";
  int r = (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (idmap_rec ? AT_RECURSIVE : 0), &attr, sizeof attr);
  if (r == 0) {
    *what = "mount_setattr (idmapped mount flags)";
    r = setattr_fd(tree, flags, rec, MS_SLAVE);
  }
  if (r < 0) {
    int e = errno;
    close(tree);
    return errno = e, -1;
  }
  tree_fd[k] = tree + 1;
  return 0;
}

/* The parent's copies of the trees: the child attaches its own. */
static void close_trees(void) {
  for (int k = 0; k < TREE_SLOTS; k++)
    if (tree_fd[k]) {
      close(tree_fd[k] - 1);
      tree_fd[k] = 0;
    }
}

/* OP_BIND_TREE: attach tree k onto the target. */
static int step_bind_tree(struct step *s, int (*open_tgt)(struct step *, const char *, int), const char **what) {
  int k = (int)I(s, 0);
  *what = "bind a prepared mount: no mount in that slot";
  if (k < 0 || k >= TREE_SLOTS || !tree_fd[k]) return errno = EINVAL, -1;
  int tree = tree_fd[k] - 1;
  tree_fd[k] = 0;
  *what = "open mount target";
  int tfd = open_tgt(s, Sx(s, 1), 0);
  int r = -1;
  if (tfd >= 0) {
    *what = "move_mount (idmapped mount)";
    r = (int)syscall(SYS_move_mount, tree, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  }
  int e = errno;
  if (tfd >= 0) close(tfd);
  close(tree);
  errno = e;
  return r;
}

/* OP_IDMAP_BIND: an idmapped bind mount of a host source onto a target. */
static int step_idmap_bind(struct step *s, int (*open_tgt)(struct step *, const char *, int), const char **what) {
  const char *src = Sx(s, 0), *dst = Sx(s, 1);
  int slot = (int)I(s, 2), rec = (int)I(s, 3);
  *what = "idmapped mount: no user namespace in that slot";
  if (slot != -1 && (slot < 0 || slot >= IDMAP_SLOTS || idmap_userns_fd[slot] <= 0)) return errno = EINVAL, -1;
  *what = slot == -1 ? "open_tree (bind mount source)" : "open_tree (idmapped mount source)";
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
  if (tree < 0) return -1;
  int r = 0;
  if (slot != -1) {
    struct berth_mount_attr attr = {0};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)(idmap_userns_fd[slot] - 1);
    *what = "mount_setattr MOUNT_ATTR_IDMAP";
    r = (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr, sizeof attr);
  }
  if (r == 0) {
    /* a copy of a shared host mount would be its peer */
    *what = "mount_setattr (slave propagation)";
    r = setattr_fd(tree, 0, rec, MS_SLAVE);
  }
  if (r == 0) {
    *what = "open idmapped mount target";
    int tfd = open_tgt(s, dst, 0);
    if (tfd < 0) r = -1;
    else {
      *what = "move_mount (idmapped mount)";
      r = (int)syscall(SYS_move_mount, tree, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
      int e = errno;
      close(tfd);
      errno = e;
    }
  }
  int e = errno;
  close(tree);
  errno = e;
  return r;
}

/* OP_ROOT_REBIND: the working directory's mount, bound onto itself, is the root. */
static int step_root_rebind(const char **what) {
  *what = "open_tree (the root filesystem, the working directory)";
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) return -1;
  *what = "open the root filesystem (the working directory)";
  int here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (here < 0) {
    int e = errno;
    close(tree);
    return errno = e, -1;
  }
  *what = "move_mount (bind the root filesystem onto itself)";
  int r = (int)syscall(SYS_move_mount, tree, "", here, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  int e = errno;
  close(here);
  if (r < 0) {
    close(tree);
    return errno = e, -1;
  }
  set_root(tree); /* the fd now names the attached bind */
  return 0;
}

#endif
