"""Operations: plain functions composing inventory, state, secrets, vSphere and the run engine."""
