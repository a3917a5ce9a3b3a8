/* relay/src/config.h — the relay's configuration table (keys, defaults, help), from which --help and the example come. */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include "corral/config.h"

/* Every key corral-relay reads, ended by an entry whose name is NULL. */
extern const cr_config_entry_t relay_config_table[];

#endif
