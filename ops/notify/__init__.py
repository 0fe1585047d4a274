"""The relay's notifier: alert rules over the monitoring readings, sent to a webhook or Slack.

`rules` turns the readings of ops/monitoring into one `Reading` per alert; `notifier` advances
each alert's state in Redis (worker/store/alerts.py) and sends firing, repeat and resolved
messages through `sinks`, on the one process holding the `notifier` lease; `build` wires it from
Settings; `cli` is `jetti-relay notify` and `jetti-relay alerts`. docs/alerts.md has the table.
"""
