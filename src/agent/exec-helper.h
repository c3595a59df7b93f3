/* The exec helper's parts that live in files of their own (see exec-helper.c for the binary). */
#ifndef HYPERCORE_EXEC_HELPER_H
#define HYPERCORE_EXEC_HELPER_H

/* `exec-helper restore`: applies a restored guest's identity (exec-helper-restore.c). */
int restore_identity(void);

#endif
