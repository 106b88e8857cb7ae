package awssm
