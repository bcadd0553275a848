"""iPTNet proper: importance propagation (PM), collaborative mean teaching (TM), the joint step and schedule."""
