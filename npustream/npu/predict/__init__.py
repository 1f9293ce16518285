"""Layer 4 of the NPU stack: predictions, never measurements. Event simulation of a plan over a
window and a stream (simulate), the choice of plan (scheduler), the resource check against
Phoenix's limits (resources) and the Gantt chart (gantt); amd/IRON's stock operators and the
encoder built from them (stock), one step named by IRON's class and arguments (iron_steps); the
published Phoenix measurements the parameters are fitted to (calibration, with its table
phoenix_published.json)."""
