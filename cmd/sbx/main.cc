// sbx: the command line of sbx.

#include "src/cli/cli.h"

int main(int argc, char** argv) { return sbx::cli::Main(argc, argv); }
