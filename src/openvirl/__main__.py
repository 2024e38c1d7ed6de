"""`python -m openvirl` is the same as the `openvirl` command."""

from openvirl.cli import main

main()
