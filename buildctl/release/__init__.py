"""Release steps run on the host after a board built: sign its artifacts, then gate them.

``sign.sign_board`` signs every .mender of a board with the product's key (the private key
never enters the build container); ``gate.gate_board`` checks what the board's manifest
promises against what its build deployed.
"""
