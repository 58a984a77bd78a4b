"""Helpers of docker/validate (run with the venv's python; standard library, plus jsonschema and
PyYAML for `compose`). Each subcommand prints what it found; a non-zero exit is a failed check.

  dockerfile FILE                   the final stage's settings, and the build stage's RUN, as JSON
  image-env FILE ROOT               the final stage's ENV as NAME=VALUE lines, image paths under ROOT
  free-ports N                      N free TCP ports on 127.0.0.1
  context REPO DEST                 copy the build context .dockerignore leaves into DEST
  compose COMPOSE SCHEMA TOML       Compose Specification schema, then this repository's rules
  secrets COMPOSE                   "NAME FILE" per top-level secret (FILE relative to COMPOSE's dir)
  service-secrets COMPOSE SERVICE   "NAME FILE" per secret mounted into SERVICE
  service-env COMPOSE SERVICE       SERVICE's environment as NAME=VALUE lines
  replace SRC DEST OLD NEW ...      copy SRC with each OLD (which must occur) replaced by NEW
  files DIR UID GID                 every file under DIR: owner and mode (0600 files, 0700 dirs)
  lb-status URL                     "server status" lines from haproxy's CSV stats
  load URL CACERT TOKENFILE STOP OUT  POST /Users on new connections until STOP exists; counts to OUT
"""

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import stat
import sys
import time
import tomllib
import urllib.request
from pathlib import Path


def fail(message):
    print(f"error: {message}")
    sys.exit(1)


# --- Dockerfile -------------------------------------------------------------------------------


def instructions(path):
    """(instruction, arguments) pairs: continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        current = ""
    return out


def parse_env(rest):
    tokens = shlex.split(rest)
    if tokens and "=" not in tokens[0]:  # legacy form: ENV NAME value with spaces
        return [(tokens[0], rest.split(None, 1)[1] if len(tokens) > 1 else "")]
    return [tuple(token.split("=", 1)) for token in tokens]


def dockerfile(path):
    stages, current = [], None
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            current = {"from": rest, "run": [], "env": []}
            stages.append(current)
            continue
        if keyword == "RUN":
            current["run"].append(rest)
        elif keyword == "ENV":
            current["env"].extend(parse_env(rest))
        elif keyword in ("ENTRYPOINT", "CMD"):
            current[keyword.lower()] = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            current["healthcheck"] = {"options": options.split(), "cmd": json.loads(command)}
        elif keyword in ("USER", "WORKDIR", "STOPSIGNAL"):
            current[keyword.lower()] = rest
        elif keyword == "VOLUME":
            current["volume"] = json.loads(rest) if rest.startswith("[") else rest.split()
        elif keyword == "EXPOSE":
            current["expose"] = rest.split()
    final = stages[-1]
    final["build_stages"] = [{"from": s["from"], "run": s["run"]} for s in stages[:-1]]
    return final


def image_env(path, root):
    """The final stage's ENV, with the image's own paths (its WORKDIR and VOLUMEs, where the
    plain run lays them out under ROOT) moved under ROOT."""
    final = dockerfile(path)
    dirs = sorted({final.get("workdir", "/")} | set(final.get("volume", [])), key=len, reverse=True)
    dirs = [d for d in dirs if d != "/"]
    for name, value in final["env"]:
        for d in dirs:
            value = re.sub(rf"(?<![\w.-]){re.escape(d)}(?=/|$|\?)", root + d, value)
        print(f"{name}={value}")


# --- the build context ------------------------------------------------------------------------


def dockerignore_patterns(repo):
    patterns = []
    for line in (Path(repo) / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        patterns.append((negate, re.compile("^" + glob_regex(pattern) + "$")))
    return patterns


def glob_regex(pattern):
    """Go's filepath.Match with `**` (any number of directories), as Docker reads .dockerignore."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1].replace("[!", "[^"), end + 1
        elif c == "\\" and i + 1 < len(pattern):
            out, i = out + re.escape(pattern[i + 1]), i + 2
        else:
            out, i = out + re.escape(c), i + 1
    return out


def excluded(relpath, patterns):
    """Docker's rule: the last pattern matching the path, or one of its parent directories, wins."""
    parents = [relpath]
    parts = relpath.split("/")
    parents += ["/".join(parts[:n]) for n in range(1, len(parts))]
    result = False
    for negate, regex in patterns:
        if any(regex.match(p) for p in parents):
            result = not negate
    return result


def context(repo, dest):
    repo, dest = Path(repo), Path(dest)
    patterns = dockerignore_patterns(repo)
    count, size, top = 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(repo):
        rel_dir = Path(dirpath).relative_to(repo)
        # Never descend into what is excluded whole and cannot be re-included below.
        dirnames[:] = [d for d in dirnames if d not in (".git", "target") or rel_dir != Path(".")]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if excluded(rel, patterns):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, target)
            count += 1
            size += (repo / rel).stat().st_size
            top.add(rel.split("/")[0])
    print(f"context: {count} files, {size / 1e6:.1f} MB: {' '.join(sorted(top))}")
    problems = [
        rel
        for rel in ("docker/secrets", "fuzz", "target", ".git", "docs")
        if (dest / rel).exists()
    ]
    # Of bench/, only bench/bare's manifest and source: a workspace member cargo must read.
    if (dest / "bench").exists():
        kept = [p.relative_to(dest).as_posix() for p in (dest / "bench").rglob("*") if p.is_file()]
        problems += [rel for rel in kept if rel != "bench/bare/Cargo.toml" and not rel.startswith("bench/bare/src/")]
    problems += [str(p.relative_to(dest)) for p in dest.rglob("*.db*")]
    if problems:
        fail(f"the context holds what it must not: {', '.join(problems)}")


# --- compose ----------------------------------------------------------------------------------


def compose(compose_path, schema_path, toml_path):
    import jsonschema
    import yaml

    compose_path = Path(compose_path)
    base = compose_path.parent
    doc = yaml.safe_load(compose_path.read_text())
    schema = json.loads(Path(schema_path).read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)
    )
    for error in errors:
        print(f"error: schema: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}")
    print(f"schema: {len(errors)} errors")

    problems = []
    services = doc.get("services", {})
    top_secrets = doc.get("secrets", {})
    top_volumes = doc.get("volumes", {}) or {}
    if "version" in doc:
        problems.append("the obsolete top-level `version` key is set")
    for name, svc in services.items():
        profiles = set(svc.get("profiles", []))
        for secret in svc.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            if source not in top_secrets:
                problems.append(f"{name}: secret {source} is not declared")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                if not (base / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
            elif source and source not in top_volumes:
                problems.append(f"{name}: volume {source} is not declared")
        for dependency in svc.get("depends_on", {}):
            if dependency not in services:
                problems.append(f"{name}: depends on unknown service {dependency}")
            elif set(services[dependency].get("profiles", [])) - profiles:
                problems.append(f"{name}: depends on {dependency}, which only runs in a profile")
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is published beyond the host's loopback")
        build = svc.get("build")
        if build:
            context_dir = base / build["context"]
            if not (context_dir / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: no Dockerfile at {build['context']}/{build.get('dockerfile')}")
            if not (context_dir / ".dockerignore").is_file():
                problems.append(f"{name}: the build context {build['context']} has no .dockerignore")
    for name, secret in top_secrets.items():
        if not str(secret.get("file", "")).startswith("./secrets/"):
            problems.append(f"secret {name} is not a file under docker/secrets/")

    config = tomllib.loads(Path(toml_path).read_text())
    store = config.get("store", {})
    if not str(store.get("url_file", "")).startswith("/run/secrets/") or "url" in store or "url_env" in store:
        problems.append(
            "scimtrail.toml: the store must come from [store] url_file (a /run/secrets/ file), with no url or url_env"
        )
    listen = config.get("listen", {})
    bound = listen.get("ready_grace_secs", 5) + listen.get("drain_secs", 30)
    instances = {n: s for n, s in services.items() if "SCIMTRAIL_INSTANCE" in s.get("environment", {})}
    if len(instances) < 2:
        problems.append("fewer than two scimtrail instances")
    names = [s["environment"]["SCIMTRAIL_INSTANCE"] for s in instances.values()]
    if sorted(names) != sorted(instances) or len(set(names)) != len(names):
        problems.append(f"SCIMTRAIL_INSTANCE must be each service's own name: {names}")
    for name, svc in instances.items():
        env = svc["environment"]
        grace = svc.get("stop_grace_period", "10s")
        seconds = int(grace[:-1]) * (60 if grace.endswith("m") else 1)
        if seconds <= bound:
            problems.append(f"{name}: stop_grace_period {grace} does not exceed ready_grace_secs + drain_secs = {bound}s")
        if svc.get("healthcheck", {}).get("test") != ["CMD", "scimtrail", "health", "--ready"]:
            problems.append(f"{name}: the healthcheck is not `scimtrail health --ready`")
        # The store comes from scimtrail.toml's [store] url_file; the environment would outrank it.
        for key in ("SCIMTRAIL_STORE_URL", "SCIMTRAIL_DATABASE_URL"):
            if key in env:
                problems.append(f"{name}: {key} is set: it would outrank [store] url_file (environment > file)")
        if "entrypoint" in svc or svc.get("command", ["serve"]) != ["serve"]:
            problems.append(f"{name}: not the image's ENTRYPOINT and CMD (scimtrail serve)")
        mounted = {s if isinstance(s, str) else s.get("target", s["source"]) for s in svc.get("secrets", [])}
        for path in sorted(set(re.findall(r'"/run/secrets/([^"/]+)"', Path(toml_path).read_text()))):
            if path not in mounted:
                problems.append(f"{name}: scimtrail.toml reads /run/secrets/{path}, which is not mounted into it")
        if any(str(p).split(":")[-1] == "8080" for p in svc.get("ports", [])):
            problems.append(f"{name}: the proxy port is published (the load balancer is the way in)")
        for key in ("SCIMTRAIL_CONFIG", "SCIMTRAIL_LISTEN", "SCIMTRAIL_ADMIN_LISTEN", "SCIMTRAIL_LOG_FORMAT"):
            if key not in env:
                problems.append(f"{name}: {key} is not set")
    # Prometheus scrapes every instance's admin listener.
    for name, svc in services.items():
        if not str(svc.get("image", "")).startswith("prom/prometheus"):
            continue
        mounts = [v.split(":")[0] for v in svc.get("volumes", []) if str(v).endswith("prometheus.yml:ro")]
        scrape = yaml.safe_load((base / mounts[0]).read_text()) if mounts else {}
        targets = {
            target
            for job in scrape.get("scrape_configs", [])
            for static in job.get("static_configs", [])
            for target in static.get("targets", [])
        }
        if targets != {f"{instance}:9180" for instance in instances}:
            problems.append(f"{name}: prometheus.yml scrapes {sorted(targets)}, not every instance's :9180")
    print(
        f"rules: {len(services)} services, {len(top_secrets)} secrets, instances {sorted(instances)}, "
        f"stop_grace_period > {bound}s, loopback-only ports, prometheus targets; the store from "
        f"[store] url_file = {store.get('url_file')!r}, no store URL in the instances' environment"
    )
    for problem in problems:
        print(f"error: {problem}")
    if errors or problems:
        sys.exit(1)


def secrets(compose_path):
    import yaml

    doc = yaml.safe_load(Path(compose_path).read_text())
    for name, secret in doc.get("secrets", {}).items():
        print(name, secret["file"])


def service_secrets(compose_path, service):
    import yaml

    doc = yaml.safe_load(Path(compose_path).read_text())
    for secret in doc["services"][service].get("secrets", []):
        source = secret if isinstance(secret, str) else secret["source"]
        target = secret if isinstance(secret, str) else secret.get("target", source)
        print(target, doc["secrets"][source]["file"])


def service_env(compose_path, service):
    import yaml

    doc = yaml.safe_load(Path(compose_path).read_text())
    environment = doc["services"][service].get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    for key, value in environment.items():
        print(f"{key}={value}")


# --- small tools ------------------------------------------------------------------------------


def free_ports(n):
    sockets = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in sockets))
    for s in sockets:
        s.close()


def replace(src, dest, *pairs):
    text = Path(src).read_text()
    for old, new in zip(pairs[::2], pairs[1::2]):
        if old not in text:
            fail(f"{src} no longer holds {old!r}: docker/validate needs updating")
        text = text.replace(old, new)
    Path(dest).write_text(text)


def files(directory, uid, gid):
    uid, gid, problems, seen = int(uid), int(gid), [], 0
    for path in sorted(Path(directory).rglob("*")):
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        print(f"  {oct(mode)[2:]:>4} {st.st_uid}:{st.st_gid} {path.relative_to(directory)}")
        seen += 1
        if (st.st_uid, st.st_gid) != (uid, gid) or mode != want:
            problems.append(f"{path.relative_to(directory)} is {oct(mode)} {st.st_uid}:{st.st_gid}")
    if not seen:
        fail(f"nothing in {directory}")
    for problem in problems:
        print(f"error: {problem}")
    if problems:
        sys.exit(1)


def lb_status(url):
    with urllib.request.urlopen(url, timeout=2) as response:
        rows = response.read().decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    for row in rows[1:]:
        fields = dict(zip(header, row.split(",")))
        if fields.get("svname") not in ("FRONTEND", "BACKEND", None):
            print(fields["svname"], fields["status"].replace(" ", "_"), fields.get("stot", "0"))


def load(url, cacert, token_file, stop, out):
    """Requests through the load balancer, one new connection each, until STOP exists. The
    token is read from its file, so that it is not on a command line."""
    token = Path(token_file).read_text().strip()
    context = ssl.create_default_context(cafile=cacert)
    counts, failures, n = {}, [], 0
    while not os.path.exists(stop):
        n += 1
        body = json.dumps(
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"load-{os.getpid()}-{n}@example.com"}
        ).encode()
        request = urllib.request.Request(
            url + "/Users",
            data=body,
            method="POST",
            headers={"Content-Type": "application/scim+json", "Authorization": f"Bearer {token}", "Connection": "close"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except Exception as error:  # a refused or reset connection: what a rolling restart must not cause
            status = type(error).__name__
            failures.append(f"{time.strftime('%H:%M:%S')} {error}")
        counts[str(status)] = counts.get(str(status), 0) + 1
        time.sleep(0.05)
    Path(out).write_text(json.dumps({"counts": counts, "failures": failures[:10]}))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "dockerfile":
        print(json.dumps(dockerfile(*args)))
    elif command == "image-env":
        image_env(*args)
    elif command == "context":
        context(*args)
    elif command == "compose":
        compose(*args)
    elif command == "secrets":
        secrets(*args)
    elif command == "service-secrets":
        service_secrets(*args)
    elif command == "service-env":
        service_env(*args)
    elif command == "free-ports":
        free_ports(*args)
    elif command == "replace":
        replace(*args)
    elif command == "files":
        files(*args)
    elif command == "lb-status":
        lb_status(*args)
    elif command == "load":
        load(*args)
    else:
        fail(f"unknown command {command}")
