"""The built-in lab: network namespaces (client - router - server), servers, impairments, scenarios, the demo."""

from rawtui.api import lazy

__all__ = ["SCENARIOS", "Lab", "LabControl", "LabError", "cleanup_stale_labs", "start_relay"]
__getattr__ = lazy(__name__, {"Lab": "topology", "LabError": "topology", "cleanup_stale_labs": "topology",
                              "LabControl": "control", "SCENARIOS": "scenarios", "start_relay": "impair"})
