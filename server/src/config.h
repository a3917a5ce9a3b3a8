/* server/src/config.h — corrald's configuration table (keys, defaults, help), from which --help and the example come. */
#ifndef HOST_CONFIG_H
#define HOST_CONFIG_H

#include "corral/config.h"

/* Every key corrald reads, ended by an entry whose name is NULL. */
extern const cr_config_entry_t host_config_table[];

#endif
