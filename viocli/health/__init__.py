"""The health collectors of ``viocli deployment status``.

Each collector checks one thing across the deployment's nodes (VM power, SSH, time, Galera, RabbitMQ,
memcached, HAProxy, the VIPs, the APIs, nova-compute, disk space) and returns one
:class:`~viocli.health.result.Result` in the shape VMware's viocli printed: ``collector_name``,
``overall_status`` (SUCCESS, WARNING, FAILURE), the affected ``nodes``, a ``message`` and an ``action``.
Collectors only read: they never change a node, take no lock and need no secret they cannot read.
"""
