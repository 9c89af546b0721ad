"""The task model: tasks, results, context, hooks, serialisation and execution."""
