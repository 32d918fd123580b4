from datetime import UTC, datetime

from bot.models import Alert, AlertStatus, Incident, IncidentStatus, Risk, Verb
from bot.playbook_types import ActionTemplate, Playbook, Symptoms

T0 = datetime(2026, 11, 27, 13, 7, 56, tzinfo=UTC)


def alert(labels: dict[str, str], annotations: dict[str, str] | None = None, **kw) -> Alert:
    return Alert(
        fingerprint=kw.pop("fingerprint", "f" + str(abs(hash(tuple(sorted(labels.items())))))),
        status=kw.pop("status", AlertStatus.FIRING),
        labels=labels,
        annotations=annotations or {},
        starts_at=T0,
        **kw,
    )


def incident_for(alerts: list[Alert], incident_id: str = "INC-TEST01") -> Incident:
    labels = alerts[0].labels
    return Incident(
        id=incident_id,
        group_key="test",
        group_labels={k: labels[k] for k in ("alertname", "namespace") if k in labels},
        title=labels["alertname"],
        alertname=labels["alertname"],
        severity=labels.get("severity", "warning"),
        target=labels.get("deployment") or labels.get("service") or labels["alertname"],
        namespace=labels.get("namespace", ""),
        status=IncidentStatus.FIRING,
        firing_count=len(alerts),
        resolved_count=0,
        opened_at=T0,
        updated_at=T0,
        chat_id=-100,
    )


# The lab fixtures (../shared/fixtures/alertmanager), reduced to their labels.
CRASHLOOP = {
    "alertname": "LabPodCrashLooping",
    "deployment": "cart",
    "namespace": "shop",
    "service": "cart-svc",
    "severity": "warning",
}
ERROR_RATE = {
    "alertname": "LabHighErrorRate",
    "namespace": "payments",
    "service": "checkout",
    "severity": "critical",
}
DISK_FULL = {
    "alertname": "LabDiskFull",
    "instance": "node-a",
    "namespace": "ops",
    "service": "storage",
    "severity": "warning",
}


CREATED = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


def playbook(**kw) -> Playbook:
    fields = {
        "name": "crash-restart",
        "symptoms": Symptoms(
            alertnames=["KubePodCrashLooping"], services=["cart-svc"], namespaces=["shop"]
        ),
        "action": ActionTemplate(verb=Verb.ROLLOUT_RESTART),
        "risk": Risk.MEDIUM,
        "created_at": CREATED,
    }
    return Playbook(**(fields | kw))
