//! Plugin host: registry, manager, hooks, configuration and the dynamic loader.
