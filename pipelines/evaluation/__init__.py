"""The paper's evaluation suite: metrics on arrays, dataset readers, the task runner and the report."""
