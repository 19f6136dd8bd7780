"""``kubectl lbaas``: the operator's objects as a person looks at them (docs/kubectl-plugin.md).

Installed with the package as the console script ``kubectl-lbaas``, which kubectl finds on the
PATH. It only reads: ``status``/``describe`` show a VIP's whole tree (objects, phases, device,
agent, members' health, last Events), ``why`` the reason chain of a Pending or Error object, and
``top`` per-VIP traffic from the agents' ``/metrics`` (docs/metrics.md section 3).

- :mod:`lbaas.plugin.kube`: the user's kubeconfig (``KUBECONFIG``, ``--context``,
  ``--namespace``) and the reads;
- :mod:`lbaas.plugin.tree`: a VIP's tree gathered into plain data;
- :mod:`lbaas.plugin.why`: reason chains;
- :mod:`lbaas.plugin.top`: traffic from the agents' metrics;
- :mod:`lbaas.plugin.output`: aligned tables, JSON and YAML;
- :mod:`lbaas.plugin.cli`: the commands.
"""
