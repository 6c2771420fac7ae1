#include "src/runtime/tool/runtime_tool.h"

int main(int argc, char** argv) { return sbx::runtime::RunTool(argc, argv); }
