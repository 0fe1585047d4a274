"""docker-compose.yml is checked without Docker: it is parsed (with docker-compose.sandbox.yml
merged on top, as `docker compose -f docker-compose.yml -f docker-compose.sandbox.yml` does), and
everything it refers to must exist in the project and be documented.

- every `jetti-relay` command (services and health checks) parses with the real click commands,
  so a renamed subcommand or option fails here;
- every `celery -A ...` command names an importable app and a real Celery subcommand, and Flower's
  options are Flower's;
- every file mounted or copied into an image exists;
- every variable is documented: JETTI_RELAY_* in the Settings class and the settings table
  (docs/settings.md), any other in the operations runbook (docs/operations.md);
- docker-compose.yml sets no Jetti variable (real Jetti needs all of them from .env together), and
  the sandbox file points every one of them, in every jetti-relay service, at the sandbox;
- the `ha` profile is a primary (`redis`), two replicas following it and three sentinels with
  quorum 2 watching it, and with the `ha` block of .env.example every relay service points at
  exactly those sentinels; the `rabbitmq` profile's consumer_timeout is the one the relay is told.
"""

from __future__ import annotations

import importlib
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from ops.cli import main as jetti_relay
from tests.docs import doc_section
from worker.settings import ENV_PREFIX, Settings
from worker.settings.sentinels import parse_sentinels

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SANDBOX_COMPOSE = ROOT / "docker-compose.sandbox.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
OPERATIONS = "docs/operations.md"
HA_GUIDE = "docs/high-availability.md"
RABBITMQ_CONF = ROOT / "deploy/rabbitmq/rabbitmq.conf"
ALERTMANAGER_CONF = ROOT / "deploy/alertmanager/alertmanager.yml"
PROMETHEUS_CONF = ROOT / "ops/monitoring/prometheus.yml"
ALERT_RULES = ROOT / "ops/monitoring/alerts.yml"
ALERTS_DOC = "docs/alerts.md"

# Services the issue asks for.
EXPECTED_SERVICES = {
    "redis",
    "worker",
    "pump",
    "flower",
    "metrics",
    "prometheus",
    "grafana",
    "sandbox",
    "intake",
    "alertmanager",
    "console",
}
# The profiles' services (docs/high-availability.md).
HA_REPLICAS = {"redis-replica-1", "redis-replica-2"}
HA_SENTINELS = {"sentinel-1", "sentinel-2", "sentinel-3"}
# Set by Docker in every container; not ours to document.
DOCKER_VARIABLES = {"HOSTNAME"}
# Which Jetti the relay talks to: real Jetti needs every one of them, so none has a default here.
JETTI_VARIABLES = {
    "JETTI_RELAY_JETTI_ASYNC_URL",
    "JETTI_RELAY_WEBHOOK_HASH",
    "JETTI_RELAY_JETTI_API_URL",
    "JETTI_RELAY_API_TOKEN",
    "JETTI_RELAY_CHANNEL_ID",
}


def compose(path: Path = COMPOSE) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def base_services() -> dict[str, dict[str, Any]]:
    """docker-compose.yml alone (real Jetti from .env)."""
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def services() -> dict[str, dict[str, Any]]:
    """docker-compose.yml with docker-compose.sandbox.yml merged on top (compose's rules for
    the keys used: `environment` maps merge, anything else is replaced)."""
    merged = base_services()
    for name, override in compose(SANDBOX_COMPOSE)["services"].items():
        service = dict(merged.get(name, {}))
        for key, value in override.items():
            if key == "environment" and isinstance(service.get(key), dict):
                service[key] = {**service[key], **value}
            else:
                service[key] = value
        merged[name] = service
    return merged


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def healthcheck_argv(test: list[str] | str) -> list[str]:
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1].replace("$$", "$"))
    assert test[0] == "CMD", f"healthcheck test must start with CMD or CMD-SHELL: {test}"
    return [str(a) for a in test[1:]]


def check_jetti_relay(args: list[str], env: dict[str, str], monkeypatch: Any) -> None:
    """Parse `jetti-relay ARGS` with the real click commands (nothing runs)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert args, "jetti-relay without a subcommand"
    ctx = click.Context(jetti_relay, info_name="jetti-relay")
    command = jetti_relay.get_command(ctx, args[0])
    assert command is not None, f"jetti-relay has no subcommand {args[0]!r}"
    command.make_context(args[0], args[1:], parent=ctx)


def check_celery(args: list[str]) -> None:
    """`celery -A APP SUB ...`: APP imports and has a Celery app, SUB exists, options parse."""
    from celery.bin.celery import celery as celery_cli

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click's protected_args
        ctx = celery_cli.make_context("celery", list(args))
        rest = [*ctx.protected_args, *ctx.args]
    app_path = ctx.params["app"]
    assert app_path, f"celery command without -A: {args}"
    module = importlib.import_module(app_path)
    assert hasattr(module, "app"), f"{app_path} has no `app`"
    sub, sub_args = rest[0], rest[1:]
    assert sub in celery_cli.commands, f"celery has no subcommand {sub!r}"
    if sub == "flower":
        import flower.options  # noqa: F401  (defines Flower's tornado options)
        from tornado.options import options

        for arg in sub_args:
            name = arg.lstrip("-").split("=", 1)[0].replace("_", "-")
            assert name in options._options, f"flower has no option --{name}"
    else:
        celery_cli.commands[sub].make_context(sub, sub_args, parent=ctx)


def check_command(args: list[str], env: dict[str, str], monkeypatch: Any) -> None:
    program = args[0]
    if program == "jetti-relay":
        check_jetti_relay(args[1:], env, monkeypatch)
    elif program == "celery":
        check_celery(args[1:])
    elif program == "python" and args[1] == "-c":
        compile(args[2], "<healthcheck>", "exec")
    else:
        # Third-party images (redis-cli, wget, redis-server, RabbitMQ's): not ours to check.
        assert program in {"redis-server", "redis-cli", "wget", "rabbitmq-diagnostics"}, (
            f"unknown program {program!r}"
        )


def project_services() -> list[str]:
    return [name for name, s in services().items() if s.get("build")]


def test_every_service_the_issue_asks_for_is_there() -> None:
    """Redis, worker, pump+sweeper, Flower, metrics, Prometheus, Grafana and the sandbox."""
    assert set(services()) >= EXPECTED_SERVICES


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_every_service_has_a_health_check_and_a_restart_policy(name: str) -> None:
    service = services()[name]
    assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
    assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_redis_persists_and_never_evicts() -> None:
    """AOF on and maxmemory-policy noeviction (a dropped key is a lost order or message), under
    a maxmemory from a documented variable: without a limit the policy never applies and Redis
    grows until the kernel kills it (reliability review #15)."""
    args = argv(services()["redis"]["command"])
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--maxmemory" in args, "noeviction without maxmemory does nothing"
    assert re.fullmatch(r"\$\{REDIS_MAXMEMORY:-\d+[kmg]b\}", args[args.index("--maxmemory") + 1])
    assert any(v.endswith(":/data") for v in services()["redis"]["volumes"])


def required(value: str, variable: str) -> bool:
    """`value` is `${VARIABLE:?...}`: compose refuses to start without it (no default)."""
    return re.search(r"\$\{" + variable + r":\?[^}]*\}", value) is not None


def test_redis_has_a_password_and_every_relay_url_carries_it() -> None:
    """requirepass from REDIS_PASSWORD (no default), and every relay process's Redis URL has it
    (review L1: any container on the network could read orders or inject them)."""
    redis_service = services()["redis"]
    args = argv(redis_service["command"])
    assert required(args[args.index("--requirepass") + 1], "REDIS_PASSWORD")
    assert required(redis_service["environment"]["REDISCLI_AUTH"], "REDIS_PASSWORD")
    for name in project_services():
        env = services()[name].get("environment") or {}
        if "JETTI_RELAY_REDIS_URL" in env:
            assert required(env["JETTI_RELAY_REDIS_URL"], "REDIS_PASSWORD"), name
            assert env["JETTI_RELAY_REDIS_URL"].endswith("@redis:6379/0"), name


def test_flower_has_basic_auth_and_no_secrets() -> None:
    """Flower gets no env_file (the Jetti hash and token) and no Jetti variable, and requires
    basic auth from FLOWER_BASIC_AUTH (review L1)."""
    flower = services()["flower"]
    assert "env_file" not in flower
    env = flower["environment"]
    assert not JETTI_VARIABLES & set(env)
    assert required(env["FLOWER_BASIC_AUTH"], "FLOWER_BASIC_AUTH")


def test_grafana_admin_password_has_no_default() -> None:
    """No `admin` fallback: compose refuses to start without GRAFANA_ADMIN_PASSWORD."""
    env = services()["grafana"]["environment"]
    assert required(env["GF_SECURITY_ADMIN_PASSWORD"], "GRAFANA_ADMIN_PASSWORD")


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_commands_exist_in_the_project(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's command and its health check parse with the project's real commands."""
    service = services()[name]
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    if "command" in service and service.get("build"):
        check_command(argv(service["command"]), env, monkeypatch)
    check_command(healthcheck_argv(service["healthcheck"]["test"]), env, monkeypatch)


def test_the_checker_refuses_an_unknown_subcommand_or_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command check can fail: a subcommand or option the project lacks is refused."""
    with pytest.raises(AssertionError):
        check_command(["jetti-relay", "no-such-command"], {}, monkeypatch)
    with pytest.raises(click.UsageError):
        check_command(["jetti-relay", "metrics", "--no-such-option"], {}, monkeypatch)
    with pytest.raises(AssertionError):
        check_command(
            ["celery", "-A", "worker.celery_app", "flower", "--no-such=1"], {}, monkeypatch
        )


def test_mounted_files_exist() -> None:
    """Every ./path bind-mounted into a container exists in the repository."""
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_the_image_builds_from_files_that_exist() -> None:
    """Every COPY source of the Dockerfile exists, and the project services build it."""
    assert project_services(), "no service builds the project image"
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


# The extra each command a compose service runs needs (pyproject.toml), by its argv.
EXTRA_OF_COMMAND = {
    ("jetti-relay", "sandbox"): "sandbox",
    ("jetti-relay", "metrics"): "monitoring",
    ("jetti-relay", "console"): "console",
    ("celery",): "monitoring",  # Flower
}


def _extra_needed(args: list[str]) -> str | None:
    if args[:2] == ["jetti-relay", "intake"] and "--http" in args:
        return "intake"
    for prefix, extra in EXTRA_OF_COMMAND.items():
        if tuple(args[: len(prefix)]) == prefix:
            return extra
    return None


def test_the_image_installs_the_extra_of_every_service() -> None:
    """A service whose command needs an optional extra (the HTTP intake's Starlette, the
    sandbox's uvicorn, Flower) finds it in the image, instead of exiting 2 in a restart loop."""
    install = next(line for line in DOCKERFILE.read_text().splitlines() if "pip install" in line)
    installed = set(install.split('".[', 1)[1].split("]", 1)[0].split(","))
    for name, service in services().items():
        if service.get("build") and "command" in service:
            needed = _extra_needed(argv(service["command"]))
            assert needed is None or needed in installed, (name, needed, installed)


def test_grafana_and_prometheus_find_what_compose_mounts() -> None:
    """The dashboard provider's path is where compose mounts the dashboards, and Prometheus
    scrapes the metrics service on the port it listens on."""
    provider = yaml.safe_load(
        (ROOT / "ops/monitoring/grafana/provisioning/dashboards/jetti-relay.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert any(v.split(":")[1] == path for v in services()["grafana"]["volumes"])
    prometheus = yaml.safe_load((ROOT / "ops/monitoring/prometheus.yml").read_text())
    targets = [
        t
        for job in prometheus["scrape_configs"]
        if job["job_name"] == "jetti-relay"
        for c in job["static_configs"]
        for t in c["targets"]
    ]
    metrics_args = argv(services()["metrics"]["command"])
    assert targets == [f"metrics:{metrics_args[metrics_args.index('--port') + 1]}"]


def test_the_main_file_has_no_jetti_and_the_sandbox_file_all_of_it() -> None:
    """docker-compose.yml sets no Jetti variable and knows no sandbox, so following "Pointing at
    real Jetti" can leave no part (the reconciler, cancellations) aimed at the stand-in; the
    sandbox file sets all of them, in every jetti-relay service, to the sandbox."""
    base = base_services()
    assert "sandbox" not in base
    assert "sandbox" not in COMPOSE.read_text().split("services:", 1)[1].replace(
        "docker-compose.sandbox.yml", ""
    )
    # Flower only watches the broker: it gets no Jetti variable at all.
    relay = [name for name, service in base.items() if service.get("build") and name != "flower"]
    assert relay
    for name in relay:
        assert not JETTI_VARIABLES & set(base[name].get("environment") or {}), name
    merged = services()
    for name in relay:
        env = merged[name]["environment"]
        assert set(env) >= JETTI_VARIABLES, f"{name} is not pointed at the sandbox"
        for variable in ("JETTI_RELAY_JETTI_ASYNC_URL", "JETTI_RELAY_JETTI_API_URL"):
            assert env[variable].startswith("http://sandbox:8080"), (name, variable)
        sandbox_env = merged["sandbox"]["environment"]
        assert env["JETTI_RELAY_WEBHOOK_HASH"] == sandbox_env["SANDBOX_WEBHOOK_HASH"]
        assert env["JETTI_RELAY_API_TOKEN"] == sandbox_env["SANDBOX_API_TOKEN"]
    sandbox_args = argv(merged["sandbox"]["command"])
    channel = sandbox_args[sandbox_args.index("--channel-id") + 1]
    assert all(str(merged[n]["environment"]["JETTI_RELAY_CHANNEL_ID"]) == channel for n in relay)


def test_the_runbook_says_to_set_every_jetti_variable_for_real_jetti() -> None:
    runbook = doc_section(OPERATIONS, "operations")
    assert "docker-compose.sandbox.yml" in runbook
    real = runbook[runbook.index("## Pointing at real Jetti") :]
    real = real[: real.index("\n## ", 4)]
    for variable in sorted(JETTI_VARIABLES):
        assert f"`{variable}`" in real, f"{variable} missing from Pointing at real Jetti"


def used_variables() -> set[str]:
    text = (COMPOSE.read_text() + SANDBOX_COMPOSE.read_text()).replace("$$", "")
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    for service in services().values():
        names.update(service.get("environment") or {})
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names - DOCKER_VARIABLES


def test_every_variable_is_documented() -> None:
    """JETTI_RELAY_* are settings in the settings table; any other is named in the runbook, or,
    for the `ha` and `rabbitmq` profiles, in the compose section of the HA guide."""
    settings_env = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    table = doc_section("docs/settings.md", "settings")
    runbook = doc_section(OPERATIONS, "operations") + doc_section(HA_GUIDE, "compose-ha")
    for name in sorted(used_variables()):
        if name.startswith(ENV_PREFIX):
            assert name in settings_env, f"{name} is not a setting in worker/settings/model.py"
            assert f"`{name}`" in table, (
                f"{name} is missing from the settings table (docs/settings.md)"
            )
        else:
            assert name in runbook, (
                f"{name} is not explained in the operations runbook (docs/operations.md) "
                "or the HA guide's compose section (docs/high-availability.md)"
            )


def test_the_runbook_says_how_the_compose_file_is_checked() -> None:
    assert "tests/deploy/test_compose.py" in doc_section(OPERATIONS, "operations")


# --- the `ha` and `rabbitmq` profiles --------------------------------------------------------


def env_example_block(title: str) -> dict[str, str]:
    """The `# NAME=value` lines of the .env.example block whose header starts with `title`
    (the first value of a name wins, as each block lists its profile's values first)."""
    text = ENV_EXAMPLE.read_text()
    start = text.index(f"# --- {title}")
    block = text[start : text.index("\n# --- ", start + 1)]
    values: dict[str, str] = {}
    for line in block.splitlines()[1:]:
        match = re.match(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values.setdefault(match.group(1), match.group(2))
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """`value` with compose's ${NAME}, ${NAME:-default} and ${NAME:?error} resolved from `env`
    (a required name missing from `env` becomes `<NAME>`)."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        return rest if op == ":-" else f"<{name}>"

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


def profile_services(profile: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in base_services().items() if profile in s.get("profiles", [])}


def option(args: list[str], name: str) -> list[str]:
    """The values after every `name` in `args` (one word each)."""
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def sentinel_conf(service: dict[str, Any], env: dict[str, str]) -> list[list[str]]:
    """The sentinel's configuration lines (its `command`: one line per argument), as words."""
    return [interpolate(line, env).split() for line in service["command"]]


def test_the_ha_profile_is_a_primary_two_replicas_and_three_sentinels() -> None:
    """The issue's group: the always-on `redis` is the primary, the rest only run with `ha`."""
    ha = profile_services("ha")
    assert set(ha) == HA_REPLICAS | HA_SENTINELS
    assert "profiles" not in base_services()["redis"]
    for name, service in ha.items():
        assert service.get("restart") == "unless-stopped", name
        assert service["healthcheck"]["test"][:2] == ["CMD", "redis-cli"], name
        assert any(v.endswith(":/data") for v in service["volumes"]), name


def test_the_replicas_follow_the_primary_and_refuse_unreplicated_writes() -> None:
    """Each replica follows `redis` with its password, announces its own service name, keeps
    the primary's durability (AOF, noeviction), and once promoted refuses writes no replica
    holds (min-replicas-to-write 1); the primary does too with the ha block of .env.example."""
    ha_env = env_example_block("High availability")
    for name in HA_REPLICAS:
        args = argv(base_services()[name]["command"])
        assert option(args, "--replicaof") == ["redis"] and args[args.index("--replicaof") + 2] == (
            "6379"
        )
        assert required(option(args, "--masterauth")[0], "REDIS_PASSWORD"), name
        assert required(option(args, "--requirepass")[0], "REDIS_PASSWORD"), name
        assert option(args, "--replica-announce-ip") == [name]
        assert option(args, "--appendonly") == ["yes"] and option(args, "--maxmemory-policy") == [
            "noeviction"
        ]
        assert option(args, "--min-replicas-to-write") == ["1"], name
    primary = [interpolate(a, {}) for a in argv(base_services()["redis"]["command"])]
    assert option(primary, "--min-replicas-to-write") == ["0"], "alone, the primary needs none"
    primary = [interpolate(a, ha_env) for a in argv(base_services()["redis"]["command"])]
    assert option(primary, "--min-replicas-to-write") == ["1"]
    assert option(primary, "--masterauth") == ["<REDIS_PASSWORD>"]
    assert option(primary, "--replica-announce-ip") == ["redis"]


@pytest.mark.parametrize("env_name", ["defaults", "ha block"])
def test_three_sentinels_watch_the_primary_with_quorum_two(env_name: str) -> None:
    """Every sentinel monitors `redis:6379` under the master name the relay uses, quorum 2 of 3
    (any one sentinel may be lost), with the data nodes' password, resolving and announcing
    service names (container addresses change on restart)."""
    env = env_example_block("High availability") if env_name == "ha block" else {}
    master = env.get("JETTI_RELAY_REDIS_SENTINEL_MASTER") or Settings().redis_sentinel_master
    for name in HA_SENTINELS:
        service = base_services()[name]
        conf = sentinel_conf(service, env)
        monitor = next(words for words in conf if words[:2] == ["sentinel", "monitor"])
        assert monitor[2:5] == [master, "redis", "6379"], name
        quorum = int(monitor[5])
        assert quorum == 2 and len(HA_SENTINELS) // 2 < quorum <= len(HA_SENTINELS)
        assert ["sentinel", "auth-pass", master, "<REDIS_PASSWORD>"] in conf
        assert ["sentinel", "resolve-hostnames", "yes"] in conf
        assert ["sentinel", "announce-hostnames", "yes"] in conf
        assert ["sentinel", "announce-ip", name] in conf
        # Sentinel keeps its learned state in the file: written only when the volume has none.
        script = service["entrypoint"][2]
        assert script.startswith("test -f /data/sentinel.conf ||")
        assert "redis-server /data/sentinel.conf --sentinel" in script


def _sentinel_port(service: dict[str, Any]) -> int:
    conf = sentinel_conf(service, {})
    return next(int(words[1]) for words in conf if words[0] == "port")


def test_with_the_ha_block_every_relay_service_points_at_the_sentinels() -> None:
    """With the ha block of .env.example, every relay service (Flower too: it reads the broker)
    gets JETTI_RELAY_REDIS_SENTINELS naming exactly the sentinel services on their ports, the
    master name they monitor, and a replica count to wait for that the group can give; the
    values are valid settings."""
    ha_env = env_example_block("High availability")
    assert ha_env["COMPOSE_PROFILES"] == "ha"
    expected = {(name, _sentinel_port(base_services()[name])) for name in HA_SENTINELS}
    relay = [name for name, service in base_services().items() if service.get("build")]
    assert "flower" in relay and "worker" in relay
    for name in relay:
        env = {
            k: interpolate(str(v), ha_env) for k, v in base_services()[name]["environment"].items()
        }
        settings = Settings(
            redis_url="redis://:pw@redis:6379/0",
            redis_sentinels=env["JETTI_RELAY_REDIS_SENTINELS"],
            redis_sentinel_master=env["JETTI_RELAY_REDIS_SENTINEL_MASTER"],
        )
        assert set(parse_sentinels(settings.redis_sentinels)) == expected, name
        assert settings.broker_url.startswith("sentinel://"), name
    acks = int(ha_env["JETTI_RELAY_MIN_REPLICAS_ACK"])
    assert 1 <= acks <= len(HA_REPLICAS)
    assert int(ha_env["REDIS_MIN_REPLICAS_TO_WRITE"]) >= 1
    # Without the block nothing changes: no sentinels, the broker is `redis`.
    env = {k: interpolate(str(v), {}) for k, v in base_services()["worker"]["environment"].items()}
    assert env["JETTI_RELAY_REDIS_SENTINELS"] == "" and env["JETTI_RELAY_BROKER_URL"] == ""


def test_every_jetti_relay_name_of_the_profile_blocks_is_a_setting() -> None:
    """A misspelt name in .env.example would be refused at start (or silently unused)."""
    settings_env = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for title in ("High availability", "RabbitMQ"):
        for name in env_example_block(title):
            if name.startswith(ENV_PREFIX):
                assert name in settings_env, (title, name)


def test_the_rabbitmq_profile_matches_what_the_relay_is_told() -> None:
    """RabbitMQ runs with the consumer_timeout the relay assumes (JETTI_RELAY_BROKER_CONSUMER_
    TIMEOUT_S, ms in rabbitmq.conf), above the Celery hard time limit; the example broker URL is
    amqp:// to the `rabbitmq` service as the user it creates, and the relay reads it as amqp."""
    from worker.wiring import broker_options

    block = env_example_block("RabbitMQ")
    conf = {
        key.strip(): value.strip()
        for key, _, value in (
            line.partition("=")
            for line in RABBITMQ_CONF.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
    }
    timeout_s = int(conf["consumer_timeout"]) / 1000
    settings = Settings(
        broker_url=block["JETTI_RELAY_BROKER_URL"],
        broker_consumer_timeout_s=block.get("JETTI_RELAY_BROKER_CONSUMER_TIMEOUT_S", "1800"),
    )
    assert timeout_s == settings.broker_consumer_timeout_s == Settings().broker_consumer_timeout_s
    assert timeout_s > settings.hard_time_limit_s
    rabbitmq = base_services()["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]
    user = rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
    assert required(rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"], "RABBITMQ_PASSWORD")
    assert settings.broker_url.startswith(f"amqp://{user}:")
    assert "@rabbitmq:5672/" in settings.broker_url
    assert broker_options(settings).kind == "amqp"
    assert any(v.split(":")[0] == "./deploy/rabbitmq/rabbitmq.conf" for v in rabbitmq["volumes"])


def test_the_image_holds_the_clients_the_profiles_need() -> None:
    """The relay image installs only the project's dependencies and extras: Sentinel support
    comes with redis-py, AMQP with kombu (py-amqp), so neither profile needs another extra."""
    import importlib.metadata

    requirements = importlib.metadata.requires("kombu") or []
    assert any(re.match(r"amqp\b", r) for r in requirements)
    importlib.import_module("amqp")
    importlib.import_module("redis.sentinel")


@pytest.mark.parametrize("name", sorted(HA_REPLICAS | HA_SENTINELS | {"rabbitmq"}))
def test_the_profile_services_health_checks_parse(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = base_services()[name]
    check_command(healthcheck_argv(service["healthcheck"]["test"]), {}, monkeypatch)


# --- alerts: Alertmanager routes the Prometheus rules; the relay's notifier sends its own -----
def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alertmanager_config() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONF.read_text())
    return doc


def receiver_sends(receiver: dict[str, Any]) -> bool:
    """A receiver sends when it has any `*_configs` (none: what is routed to it is dropped)."""
    return any(k.endswith("_configs") and v for k, v in receiver.items())


def routed_receiver(labels: dict[str, str]) -> str:
    """The receiver Alertmanager picks for an alert with `labels` (first matching child route,
    else the root's; the matchers used here are `name="value"`)."""
    route = alertmanager_config()["route"]
    for child in route.get("routes", []):
        wanted = dict(m.replace('"', "").split("=", 1) for m in child["matchers"])
        if all(labels.get(k) == v for k, v in wanted.items()):
            return str(child["receiver"])
    return str(route["receiver"])


def test_prometheus_sends_its_alerts_to_the_alertmanager_compose_runs() -> None:
    """prometheus.yml's `alerting:` names the alertmanager service on the port it listens on,
    and compose mounts the Alertmanager configuration the service reads."""
    doc = yaml.safe_load(PROMETHEUS_CONF.read_text())
    targets = [
        t
        for am in doc["alerting"]["alertmanagers"]
        for c in am["static_configs"]
        for t in c["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    service = services()["alertmanager"]
    config_flag = next(a for a in argv(service["command"]) if a.startswith("--config.file="))
    mounted = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert mounted[config_flag.split("=", 1)[1]] == "./deploy/alertmanager/alertmanager.yml"
    assert "alertmanager" in services()["prometheus"]["depends_on"]


def test_alertmanager_receiver_is_a_documented_placeholder_that_sends_resolutions() -> None:
    """The default receiver is a webhook at an `.invalid` host (nothing leaves until it is
    changed) with send_resolved, and docs/alerts.md says to change it."""
    config = alertmanager_config()
    receivers = {r["name"]: r for r in config["receivers"]}
    default = receivers[config["route"]["receiver"]]
    (hook,) = default["webhook_configs"]
    assert ".invalid/" in hook["url"] and hook["send_resolved"] is True
    assert hook["url"] in (ROOT / ALERTS_DOC).read_text()


def test_no_alert_is_sent_by_both_paths() -> None:
    """Every rule labelled `notify: relay` reaches a receiver that sends nothing, every other
    rule one that sends; the relay's notifier evaluates its own alerts (worker.store.alerts);
    and docs/alerts.md's table lists each alert once with the path that sends it."""
    from worker.store.alerts import ALERT_NAMES

    rows: dict[str, str] = {}
    for line in doc_section(ALERTS_DOC, "alerts-table").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        assert name not in rows, f"{name} is twice in the table"
        rows[name] = cells[1]
    receivers = {r["name"]: r for r in alertmanager_config()["receivers"]}
    rules = alert_rules()
    for rule in rules:
        name, labels = rule["alert"], rule["labels"]
        sends = receiver_sends(receivers[routed_receiver(labels)])
        if labels.get("notify") == "relay":
            assert not sends, f"{name} is the relay's: Alertmanager must not send it"
            assert rows.get(name, "").startswith("nobody (twin of `"), name
            twin = rows[name].split("`")[1]
            assert twin in ALERT_NAMES, f"{name} names {twin!r}, not a relay alert"
        else:
            assert sends, f"{name} reaches no receiver that sends"
            assert rows.get(name) == "Alertmanager", name
    for name in ALERT_NAMES:
        assert rows.get(name) == "relay notifier", name
    assert set(rows) == {r["alert"] for r in rules} | set(ALERT_NAMES)


def test_the_infrastructure_alerts_the_issue_names_are_alertmanagers() -> None:
    """All workers down and Redis memory are Prometheus rules routed by Alertmanager."""
    names = {r["alert"] for r in alert_rules() if r["labels"].get("notify") != "relay"}
    assert {
        "JettiRelayAllWorkersDown",
        "JettiRelayRedisMemoryHigh",
        "JettiRelayRedisMemoryFull",
    } <= names
