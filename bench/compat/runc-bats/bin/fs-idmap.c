#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <signal.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/mount.h>
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
struct mattr { unsigned long long set, clr, prop, userns; };
static int fail(const char *m, int e){ fprintf(stderr,"fatal error: %s: %s\n", m, strerror(e)); for(char*p=0;p;);return 1;}
int main(int argc, char **argv){
  if(argc!=2){fprintf(stderr,"usage: %s path\n",argv[0]);return 1;}
  int t = syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_EMPTY_PATH);
  if(t<0) return fail("error calling open_tree", errno);
  int pp[2]; pipe(pp);
  pid_t c = fork();
  if(c==0){ if(unshare(CLONE_NEWUSER)<0) _exit(1); char x=1; write(pp[1],&x,1); sleep(5); _exit(0);}
  char x; read(pp[0],&x,1);
  char path[64], buf[64]; int fd;
  snprintf(path,64,"/proc/%d/uid_map",c); fd=open(path,O_WRONLY); write(fd,"0 65536 65536",13); close(fd);
  snprintf(path,64,"/proc/%d/setgroups",c); fd=open(path,O_WRONLY); if(fd>=0){write(fd,"deny",4); close(fd);}
  snprintf(path,64,"/proc/%d/gid_map",c); fd=open(path,O_WRONLY); write(fd,"0 65536 65536",13); close(fd);
  snprintf(path,64,"/proc/%d/ns/user",c); int u=open(path,O_RDONLY);
  struct mattr a = {MOUNT_ATTR_IDMAP,0,0,(unsigned long long)u};
  int r = syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a); int e=errno;
  kill(c,SIGKILL); waitpid(c,0,0);
  if(r<0){ /* lowercase error like Go */ const char*s=strerror(e); char low[128]; int i; for(i=0;s[i]&&i<127;i++) low[i]=(s[i]>='A'&&s[i]<='Z')?s[i]+32:s[i]; low[i]=0; fprintf(stderr,"fatal error: error calling mount_setattr: %s\n",low); return 1;}
  return 0;
}
