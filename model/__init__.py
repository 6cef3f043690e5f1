"""The topology language (pure): YAML with line and column marks, units, the strict schema of a
topology, and the names vispd derives from it. Imports nothing of the project's."""
