"""Your own task modules: one module per group of tasks, e.g. `tasks/billing.py`.

Name them in TASKQ_TASK_MODULES for `make dev` (`TASKQ_TASK_MODULES=tasks.billing make
dev`) and in the TaskModules parameter for AWS (`make deploy`). This package is shipped to
the functions as a Lambda layer of its own (TasksLayer in template.yaml): the API validates
payloads against your models and the worker runs your functions, so both import it.

Keep this file free of imports: a listed module is imported on its own, and a package that
imported all its modules would make one broken module break all of them.
"""
