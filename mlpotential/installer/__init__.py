"""The installation wizard (``mlpotential install``): what each backend
needs, what is installed and whether it works, installing and uninstalling
backends with pip run by the same interpreter, and installing the ANI
parameter files."""
