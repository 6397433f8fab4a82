"""vSphere through pyvmomi: connect, clone and customize, power, wait on tasks, snapshots, destroy."""
