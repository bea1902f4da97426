"""The evaluation matrix: every (defense, attack, seed) cell against one victim, stored
as each cell finishes so that an interrupted run resumes where it stopped."""
