# osgp_host: the CPython host side of osgp-meter (serial ports, CLI, clients,
# catalogue compiler, benchmark). Installed under the import name
# ``osgp_host``; the folder keeps the card's name, tools/.
