"""A ModelDeployment never takes over a Service another one controls: ``chat-unified``'s entry Service
has the name of ``chat``'s unified pool Service, so the second one leaves it alone and says so."""

from __future__ import annotations

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment


def _controller_of(h: OperatorHarness, service: str) -> str:
    refs = h.core.read_namespaced_service(service, OPERATOR_NS).metadata.owner_references or []
    return next(r.name for r in refs if r.controller)


def test_a_service_name_taken_by_another_model_deployment_is_left_alone_and_reported(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        h.create_md(model_deployment("chat"))
        eventually(lambda: _controller_of(h, "chat-unified") == "chat")
        h.create_md(model_deployment("chat-unified"))
        degraded = eventually(lambda: (c := h.condition("chat-unified", "Degraded")) and c["status"] == "True" and c)
        assert "Service chat-unified exists and belongs to another object" in degraded["message"]
        assert eventually(lambda: [e for e in h.events("chat-unified") if e.reason == "NameTaken"])
        # its other children are applied; the taken Service still belongs to chat
        eventually(lambda: h.apps.read_namespaced_deployment("chat-unified-unified-gpu-a", OPERATOR_NS))
        assert _controller_of(h, "chat-unified-unified") == "chat-unified"
        assert _controller_of(h, "chat-unified") == "chat"
        assert h.condition("chat", "Degraded")["status"] == "False"
