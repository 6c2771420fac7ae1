// sbxd: the sbx daemon.

#include "src/daemon/main.h"

int main(int argc, char** argv) { return sbx::daemon::Main(argc, argv); }
