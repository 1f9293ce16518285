"""Layer 4 of the NPU stack: predictions, never measurements. Event simulation of a plan over a
window and a stream (simulate), the choice of plan (scheduler), the resource check against
Phoenix's limits (resources) and the Gantt chart (gantt)."""
