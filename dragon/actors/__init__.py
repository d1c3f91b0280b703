"""Ray actors and remote functions: status shards, the job manager, task workers."""
