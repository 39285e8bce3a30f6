/*
 * OP_LSM (44): write a process attribute under /proc — an LSM exec label
 * (AppArmor `exec PROFILE` to thread-self/attr/apparmor/exec, an SELinux
 * context to thread-self/attr/exec) or a time namespace's offsets
 * (self/timens_offsets) — through the launcher's verified procfs handle
 * (paths.h: proc_write), never by a name the container could have replaced. Included by launcher.c; static functions only.
 * args: s path relative to /proc (no "..", no leading "/"), s value.
 */
static int step_lsm(struct step *s, const char **what) {
  /* through the procfs handle opened at start-up (paths.h): never a /proc the container could
   * have mounted over, no mount crossed below it, and the file must be on procfs */
  *what = "write process attribute";
  return proc_write(Sx(s, 0), Sx(s, 1));
}
