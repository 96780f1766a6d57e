"""Study runs in the kernel's room: parameterised notebooks (papermill), run records, the lab, the save guard."""
