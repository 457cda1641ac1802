"""Gate `pod-restarts`: every Pod matching a label selector is Ready and restarted at most `max-restarts` times."""

import json

from componentize_py_types import Err
import wit_world
from wit_world.imports import kube_read
from wit_world.imports.types import Error, ErrorCode, Outcome, Verdict


def restarts(pod: dict) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return sum(status.get("restartCount", 0) for status in statuses)


def is_ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def read_config(text: str) -> tuple[str, str, int]:
    try:
        config = json.loads(text)
        selector, namespace, max_restarts = config["selector"], config["namespace"], config["max-restarts"]
    except (ValueError, KeyError, TypeError) as e:
        # An error, not a failed check: the gate could not decide.
        raise Err(Error(ErrorCode.INVALID, f"bad config: {e}"))
    if not isinstance(max_restarts, int) or max_restarts < 0:
        raise Err(Error(ErrorCode.INVALID, f"max-restarts must be a whole number >= 0, not {max_restarts!r}"))
    return selector, namespace, max_restarts


class WitWorld(wit_world.WitWorld):
    """The gate world's export: `evaluate(config) -> result<verdict, error>`."""

    def evaluate(self, config: str) -> Verdict:
        selector, namespace, max_restarts = read_config(config)
        # A failed host call raises Err(Error): left uncaught, it is the gate's error answer.
        pods = json.loads(kube_read.list(kube_read.ListOptions("v1", "Pod", namespace or None, selector, None)))
        reasons = []
        seen = []
        for pod in pods:
            name = pod.get("metadata", {}).get("name", "?")
            count = restarts(pod)
            ready = is_ready(pod)
            if not ready:
                phase = pod.get("status", {}).get("phase", "Unknown")
                reasons.append(f"{name}: not Ready (phase {phase})")
            if count > max_restarts:
                reasons.append(f"{name}: restarted {count} times, more than {max_restarts}")
            seen.append({"name": name, "ready": ready, "restarts": count})
        outcome = Outcome.FAIL if reasons else Outcome.PASS
        healthy = sum(1 for pod in seen if pod["ready"] and pod["restarts"] <= max_restarts)
        reasons.append(f"{healthy}/{len(pods)} Pods matching `{selector}` are Ready with at most {max_restarts} restarts")
        return Verdict(outcome, reasons, json.dumps({"pods": seen, "max-restarts": max_restarts}))
